import { render as mount } from "preact";
import { useCallback, useEffect, useMemo, useRef, useState } from "preact/hooks";
import {
  ApiError,
  call,
  must,
  setCsrf,
  type Me,
  type Member,
  type Message,
  type Op,
  type Room,
} from "./api";
import { chooseLang, preferredLang, words, type Lang, type Words } from "./i18n";
import { mentionsMe, render } from "./notation";
import { Sync, type SyncState } from "./sync";
import "./style.css";

type Phase = { kind: "loading" } | { kind: "signin" } | { kind: "app"; me: Me };

function App() {
  const [lang, setLang] = useState<Lang>(preferredLang());
  const w = words(lang);
  const [phase, setPhase] = useState<Phase>({ kind: "loading" });

  useEffect(() => {
    document.documentElement.lang = lang;
  }, [lang]);

  const enter = useCallback(async () => {
    const session = await call<{ csrf_token: string }>("GET", "/v2/session");
    if (session.status !== 200) {
      setPhase({ kind: "signin" });
      return;
    }
    setCsrf(session.body.csrf_token);
    const me = await must<Me>("GET", "/v2/me");
    setPhase({ kind: "app", me });
  }, []);

  useEffect(() => {
    enter().catch(() => setPhase({ kind: "signin" }));
  }, [enter]);

  const changeLang = (next: Lang) => {
    chooseLang(next);
    setLang(next);
  };

  if (phase.kind === "loading") return <p class="loading">{w.appName}</p>;
  if (phase.kind === "signin") return <SignIn w={w} onSignedIn={() => void enter()} />;
  return (
    <Chat
      w={w}
      lang={lang}
      me={phase.me}
      onLang={changeLang}
      onSignedOut={() => setPhase({ kind: "signin" })}
    />
  );
}

function SignIn({ w, onSignedIn }: { w: Words; onSignedIn: () => void }) {
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  const submit = async (event: Event) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget as HTMLFormElement);
    setBusy(true);
    setError("");
    const answer = await call<{ csrf_token: string; errors?: string[] }>("POST", "/v2/session", {
      login_mail: String(form.get("email") ?? ""),
      password: String(form.get("password") ?? ""),
    });
    setBusy(false);
    if (answer.status === 200) {
      setCsrf(answer.body.csrf_token);
      onSignedIn();
    } else if (answer.status === 401) {
      setError(w.signInFailed);
    } else {
      setError(answer.body?.errors?.[0] ?? `HTTP ${answer.status}`);
    }
  };
  return (
    <main class="signin">
      <h1>{w.appName}</h1>
      <form onSubmit={submit}>
        <label>
          {w.email}
          <input name="email" type="email" autocomplete="username" required />
        </label>
        <label>
          {w.password}
          <input name="password" type="password" autocomplete="current-password" required />
        </label>
        {error ? (
          <p role="alert" class="error">
            {error}
          </p>
        ) : null}
        <button type="submit" disabled={busy}>
          {w.signIn}
        </button>
      </form>
    </main>
  );
}

function byOrder(a: Room, b: Room): number {
  if (a.sticky !== b.sticky) return a.sticky ? -1 : 1;
  return b.last_update_time - a.last_update_time;
}

function Chat(props: {
  w: Words;
  lang: Lang;
  me: Me;
  onLang: (lang: Lang) => void;
  onSignedOut: () => void;
}) {
  const { w, me } = props;
  const [rooms, setRooms] = useState<Room[]>([]);
  const [current, setCurrent] = useState<number | null>(null);
  const [filter, setFilter] = useState("");
  const [syncState, setSyncState] = useState<SyncState>("connecting");
  const [messages, setMessages] = useState<Map<number, Message[]>>(new Map());
  const [names, setNames] = useState<Map<number, string>>(new Map([[me.account_id, me.name]]));
  const [firstUnread, setFirstUnread] = useState<Map<number, string>>(new Map());
  const currentRef = useRef<number | null>(null);
  currentRef.current = current;

  const loadRooms = useCallback(async () => {
    const list = await must<Room[]>("GET", "/v2/rooms");
    setRooms(list);
    return list;
  }, []);

  const loadRoom = useCallback(async (room: number) => {
    const [list, members] = await Promise.all([
      must<Message[] | null>("GET", `/v2/rooms/${room}/messages`, { force: "1" }),
      must<Member[]>("GET", `/v2/rooms/${room}/members`),
    ]);
    setNames((known) => {
      const next = new Map(known);
      for (const member of members) next.set(member.account_id, member.name);
      for (const message of list ?? []) next.set(message.account.account_id, message.account.name);
      return next;
    });
    setMessages((known) => new Map(known).set(room, list ?? []));
    return list ?? [];
  }, []);

  // Rooms are reloaded after ops, at most every 150 ms.
  const roomsTimer = useRef<number | undefined>(undefined);
  const refreshRooms = useCallback(() => {
    if (roomsTimer.current !== undefined) return;
    roomsTimer.current = window.setTimeout(() => {
      roomsTimer.current = undefined;
      void loadRooms().catch(() => undefined);
    }, 150);
  }, [loadRooms]);

  const markRead = useCallback(
    (room: number) => {
      if (document.visibilityState !== "visible") return;
      void call("PUT", `/v2/rooms/${room}/messages/read`).then(refreshRooms);
    },
    [refreshRooms],
  );

  const apply = useCallback(
    (ops: Op[]) => {
      let touchesCurrent = false;
      setMessages((known) => {
        let next: Map<number, Message[]> | null = null;
        for (const op of ops) {
          const room = op.room_id;
          if (room === undefined) continue;
          const list = (next ?? known).get(room);
          if (!list) continue;
          let changed: Message[] | null = null;
          if (op.type === "message_created" && op.message_id) {
            if (!list.some((m) => m.message_id === op.message_id)) {
              changed = [
                ...list,
                {
                  message_id: op.message_id,
                  account: { account_id: op.account_id ?? 0, name: "" },
                  body: op.body ?? "",
                  send_time: op.send_time ?? 0,
                  update_time: 0,
                },
              ];
            }
          } else if (op.type === "message_updated") {
            changed = list.map((m) =>
              m.message_id === op.message_id
                ? { ...m, body: op.body ?? m.body, update_time: op.update_time ?? 1 }
                : m,
            );
          } else if (op.type === "message_deleted") {
            changed = list.filter((m) => m.message_id !== op.message_id);
          }
          if (changed) {
            next = next ?? new Map(known);
            next.set(room, changed);
            if (room === currentRef.current) touchesCurrent = true;
          }
        }
        return next ?? known;
      });
      for (const op of ops) {
        if (op.type === "message_created" && op.account_id !== me.account_id) notify(op);
      }
      if (touchesCurrent && currentRef.current !== null) markRead(currentRef.current);
      refreshRooms();
    },
    [me.account_id, markRead, refreshRooms],
  );

  const notify = (op: Op) => {
    if (document.visibilityState === "visible") return;
    if (!("Notification" in window) || Notification.permission !== "granted") return;
    const room = rooms.find((r) => r.room_id === op.room_id);
    if (room?.type === "direct" || mentionsMe(op.body ?? "", me.account_id)) {
      new Notification(room?.name ?? w.appName, { body: (op.body ?? "").slice(0, 140) });
    }
  };

  const resync = useCallback(async () => {
    await loadRooms();
    if (currentRef.current !== null) await loadRoom(currentRef.current);
  }, [loadRooms, loadRoom]);

  useEffect(() => {
    const sync = new Sync(me.account_id, {
      ops: apply,
      state: setSyncState,
      resync,
      signedOut: props.onSignedOut,
    });
    // Rooms first, then the op stream from the revision the page had (or now).
    void loadRooms()
      .then(() => sync.start())
      .catch(() => undefined);
    return () => sync.stop();
  }, [me.account_id]);

  const open = async (room: number) => {
    setCurrent(room);
    const unread = rooms.find((r) => r.room_id === room)?.unread_num ?? 0;
    const list = await loadRoom(room);
    if (unread > 0 && list.length >= unread) {
      setFirstUnread((known) => new Map(known).set(room, list[list.length - unread].message_id));
    }
    markRead(room);
    if ("Notification" in window && Notification.permission === "default") {
      void Notification.requestPermission().catch(() => undefined);
    }
  };

  const total = rooms.reduce((sum, room) => sum + room.unread_num, 0);
  useEffect(() => {
    document.title = total > 0 ? `(${total}) ${w.appName}` : w.appName;
  }, [total, w.appName]);

  const shown = useMemo(() => {
    const needle = filter.trim().toLowerCase();
    return rooms
      .filter((room) => !needle || room.name.toLowerCase().includes(needle))
      .sort(byOrder);
  }, [rooms, filter]);

  const signOut = async (everywhere: boolean) => {
    await call("DELETE", everywhere ? "/v2/sessions" : "/v2/session");
    props.onSignedOut();
  };

  const room = rooms.find((r) => r.room_id === current);
  return (
    <div class="chat">
      <header class="top">
        <span class="brand">{w.appName}</span>
        {syncState === "reconnecting" ? (
          <span role="status" class="reconnecting">
            {w.reconnecting}
          </span>
        ) : (
          <span role="status" class="live" />
        )}
        <span class="who">{me.name}</span>
        <label class="lang">
          {w.language}
          <select
            value={props.lang}
            onChange={(e) => props.onLang((e.currentTarget as HTMLSelectElement).value as Lang)}
          >
            <option value="en">English</option>
            <option value="ja">日本語</option>
          </select>
        </label>
        <button type="button" onClick={() => void signOut(false)}>
          {w.signOut}
        </button>
        <button type="button" onClick={() => void signOut(true)}>
          {w.signOutEverywhere}
        </button>
      </header>
      <nav aria-label={w.rooms} class="rooms">
        <input
          type="search"
          aria-label={w.filterRooms}
          placeholder={w.filterRooms}
          value={filter}
          onInput={(e) => setFilter((e.currentTarget as HTMLInputElement).value)}
        />
        <ul>
          {shown.map((r) => (
            <li key={r.room_id}>
              <button
                type="button"
                aria-current={r.room_id === current ? "page" : undefined}
                onClick={() => void open(r.room_id)}
              >
                <span class="name">{r.type === "my" ? `${r.name}` : r.name}</span>
                {r.unread_num > 0 ? (
                  <span class="badge unread" aria-label={w.unread(r.unread_num)}>
                    {r.unread_num}
                  </span>
                ) : null}
                {r.mention_num > 0 ? (
                  <span class="badge mention" aria-label={w.mentions(r.mention_num)}>
                    @{r.mention_num}
                  </span>
                ) : null}
                {r.mytask_num > 0 ? (
                  <span class="badge task" aria-label={w.tasks(r.mytask_num)}>
                    ✓{r.mytask_num}
                  </span>
                ) : null}
              </button>
            </li>
          ))}
        </ul>
      </nav>
      <main class="room">
        {room ? (
          <RoomView
            key={room.room_id}
            w={w}
            me={me}
            room={room}
            messages={messages.get(room.room_id) ?? []}
            names={names}
            firstUnread={firstUnread.get(room.room_id)}
          />
        ) : (
          <p class="empty">{w.noRoom}</p>
        )}
      </main>
    </div>
  );
}

function RoomView(props: {
  w: Words;
  me: Me;
  room: Room;
  messages: Message[];
  names: Map<number, string>;
  firstUnread: string | undefined;
}) {
  const { w, me, room, messages, names } = props;
  const list = useRef<HTMLOListElement>(null);
  const atBottom = useRef(true);
  const context = { me: me.account_id, names, words: w };

  useEffect(() => {
    const element = list.current;
    if (element && atBottom.current) element.scrollTop = element.scrollHeight;
  }, [messages.length]);

  const onScroll = () => {
    const element = list.current;
    if (!element) return;
    atBottom.current = element.scrollHeight - element.scrollTop - element.clientHeight < 40;
  };

  const jump = () => {
    const element = list.current;
    if (element) element.scrollTop = element.scrollHeight;
    atBottom.current = true;
  };

  return (
    <>
      <h1 class="room-name">{room.name}</h1>
      <ol class="messages" aria-label={w.messages} ref={list} onScroll={onScroll}>
        {messages.map((message) => (
          <MessageItem
            key={message.message_id}
            w={w}
            me={me}
            room={room.room_id}
            message={message}
            author={names.get(message.account.account_id) ?? message.account.name}
            context={context}
            unreadDivider={props.firstUnread === message.message_id}
          />
        ))}
      </ol>
      {atBottom.current ? null : (
        <button type="button" class="jump" onClick={jump}>
          {w.jumpToLatest}
        </button>
      )}
      <Composer w={w} room={room.room_id} />
    </>
  );
}

function MessageItem(props: {
  w: Words;
  me: Me;
  room: number;
  message: Message;
  author: string;
  context: { me: number; names: Map<number, string>; words: Words };
  unreadDivider: boolean;
}) {
  const { w, me, message } = props;
  const [editing, setEditing] = useState(false);
  const [draft, setDraft] = useState(message.body);
  const mine = message.account.account_id === me.account_id;
  const mentioned = !mine && mentionsMe(message.body, me.account_id);
  const time = new Date(message.send_time * 1000);
  const save = async () => {
    await must("PUT", `/v2/rooms/${props.room}/messages/${message.message_id}`, { body: draft });
    setEditing(false);
  };
  const remove = async () => {
    if (!window.confirm(w.deleteConfirm)) return;
    await must("DELETE", `/v2/rooms/${props.room}/messages/${message.message_id}`);
  };
  return (
    <>
      {props.unreadDivider ? (
        <li class="divider" role="separator">
          {w.newMessages}
        </li>
      ) : null}
      <li class={mentioned ? "message mentioned" : "message"} data-message-id={message.message_id}>
        <div class="meta">
          <span class="author">{props.author}</span>{" "}
          <time dateTime={time.toISOString()}>{time.toLocaleString()}</time>
          {message.update_time > 0 ? <span class="edited"> {w.edited}</span> : null}
        </div>
        {editing ? (
          <div class="editing">
            <textarea
              aria-label={w.edit}
              value={draft}
              onInput={(e) => setDraft((e.currentTarget as HTMLTextAreaElement).value)}
            />
            <button type="button" onClick={() => void save()}>
              {w.save}
            </button>
            <button type="button" onClick={() => setEditing(false)}>
              {w.cancel}
            </button>
          </div>
        ) : (
          <div class="body">{render(message.body, props.context)}</div>
        )}
        {mine && !editing ? (
          <div class="actions">
            <button
              type="button"
              onClick={() => {
                setDraft(message.body);
                setEditing(true);
              }}
            >
              {w.edit}
            </button>
            <button type="button" onClick={() => void remove()}>
              {w.delete}
            </button>
          </div>
        ) : null}
      </li>
    </>
  );
}

function Composer({ w, room }: { w: Words; room: number }) {
  const key = `hayabusa.draft.${room}`;
  const [text, setText] = useState(() => localStorage.getItem(key) ?? "");
  const [error, setError] = useState("");
  const composing = useRef(false);
  const area = useRef<HTMLTextAreaElement>(null);

  useEffect(() => {
    if (text) localStorage.setItem(key, text);
    else localStorage.removeItem(key);
  }, [text, key]);

  const send = async () => {
    const body = text.trim();
    if (!body) return;
    setError("");
    try {
      await must("POST", `/v2/rooms/${room}/messages`, { body: text });
      setText("");
      area.current?.focus();
    } catch (failure) {
      setError(failure instanceof ApiError ? failure.message : String(failure));
    }
  };

  const onKeyDown = (event: KeyboardEvent) => {
    if (event.key !== "Enter" || event.shiftKey) return;
    // Enter that confirms an IME conversion (Japanese input) never sends.
    if (composing.current || event.isComposing || event.keyCode === 229) return;
    event.preventDefault();
    void send();
  };

  return (
    <form
      class="composer"
      onSubmit={(event) => {
        event.preventDefault();
        void send();
      }}
    >
      <label for="compose">{w.message}</label>
      <textarea
        id="compose"
        ref={area}
        value={text}
        rows={3}
        onInput={(e) => setText((e.currentTarget as HTMLTextAreaElement).value)}
        onKeyDown={onKeyDown}
        onCompositionStart={() => (composing.current = true)}
        onCompositionEnd={() => {
          // The Enter that ends a composition arrives after compositionend in some
          // browsers: keep ignoring it for this turn of the event loop.
          window.setTimeout(() => (composing.current = false), 0);
        }}
      />
      {error ? (
        <p role="alert" class="error">
          {error}
        </p>
      ) : null}
      <button type="submit">{w.send}</button>
    </form>
  );
}

mount(<App />, document.getElementById("app")!);
