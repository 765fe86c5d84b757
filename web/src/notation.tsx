// ChatWork's message notation rendered as elements. Everything a message says ends up
// in text nodes or attribute values that Preact sets as properties, never as markup,
// so no message can inject HTML or script; links are http(s) only.

import type { ComponentChildren } from "preact";
import type { Words } from "./i18n";

export interface Context {
  me: number;
  names: Map<number, string>;
  words: Words;
}

/** Whether `body` mentions `me` (a `[To:me]`, a reply to me, or `[toall]`). */
export function mentionsMe(body: string, me: number): boolean {
  return (
    body.includes(`[To:${me}]`) ||
    new RegExp(`\\[rp aid=${me}[ \\]]`).test(body) ||
    body.includes("[toall]")
  );
}

const LINK = /https?:\/\/[^\s<>"'\[\]]+/g;

function text(raw: string, key: string): ComponentChildren[] {
  const out: ComponentChildren[] = [];
  let last = 0;
  let n = 0;
  for (const match of raw.matchAll(LINK)) {
    const at = match.index ?? 0;
    if (at > last) out.push(raw.slice(last, at));
    // Trailing punctuation is rarely part of the address.
    let url = match[0];
    const trailing = url.match(/[.,;:!?)]+$/);
    if (trailing) url = url.slice(0, -trailing[0].length);
    out.push(
      <a key={`${key}-l${n++}`} href={url} target="_blank" rel="noopener noreferrer nofollow">
        {url}
      </a>,
    );
    last = at + url.length;
  }
  if (last < raw.length) out.push(raw.slice(last));
  return out;
}

type Tag = { name: string; attrs: string; start: number; end: number };

const TAG = /\[(\/?)(To|toall|rp|qt|qtmeta|info|title|code|hr|piconname|picon)(?::([0-9]+))?([^\]]*)\]/gi;

function nextTag(body: string, from: number): (Tag & { closing: boolean; id?: string }) | null {
  TAG.lastIndex = from;
  const match = TAG.exec(body);
  if (!match) return null;
  return {
    closing: match[1] === "/",
    name: match[2].toLowerCase(),
    id: match[3],
    attrs: match[4] ?? "",
    start: match.index,
    end: match.index + match[0].length,
  };
}

/** The index of the `[/name]` that closes the block opened before `from`. */
function closing(body: string, name: string, from: number): number {
  const open = `[${name}]`;
  const close = `[/${name}]`;
  let depth = 1;
  let at = from;
  while (at < body.length) {
    const nextClose = body.indexOf(close, at);
    if (nextClose < 0) return -1;
    const nextOpen = body.indexOf(open, at);
    if (nextOpen >= 0 && nextOpen < nextClose) {
      depth++;
      at = nextOpen + open.length;
      continue;
    }
    depth--;
    if (depth === 0) return nextClose;
    at = nextClose + close.length;
  }
  return -1;
}

function attr(attrs: string, name: string): string | undefined {
  return attrs.match(new RegExp(`${name}=([^\\s\\]]+)`))?.[1];
}

/** Renders `body` (at most 32 blocks deep). */
export function render(body: string, context: Context, depth = 0, key = "n"): ComponentChildren[] {
  const out: ComponentChildren[] = [];
  let at = 0;
  let n = 0;
  const k = () => `${key}-${n++}`;
  while (at < body.length) {
    const tag = depth < 32 ? nextTag(body, at) : null;
    if (!tag) {
      out.push(...text(body.slice(at), k()));
      break;
    }
    if (tag.start > at) out.push(...text(body.slice(at, tag.start), k()));
    at = tag.end;
    if (tag.closing) {
      // A stray closing tag is shown as written.
      out.push(body.slice(tag.start, tag.end));
      continue;
    }
    switch (tag.name) {
      case "to": {
        const id = Number(tag.id);
        const name = context.names.get(id);
        out.push(
          <span key={k()} class={id === context.me ? "to me" : "to"}>
            {"To: "}
            {name ?? `#${tag.id ?? "?"}`}
          </span>,
        );
        break;
      }
      case "toall":
        out.push(
          <span key={k()} class="to all">
            {context.words.toAll}
          </span>,
        );
        break;
      case "rp": {
        const id = Number(attr(tag.attrs, "aid"));
        out.push(
          <span key={k()} class={id === context.me ? "to me" : "to"}>
            {`${context.words.reply} ${context.names.get(id) ?? ""}`.trim()}
          </span>,
        );
        break;
      }
      case "hr":
        out.push(<hr key={k()} />);
        break;
      case "picon":
      case "piconname": {
        const id = Number(tag.id);
        out.push(<span key={k()}>{context.names.get(id) ?? `#${tag.id ?? "?"}`}</span>);
        break;
      }
      case "code": {
        const end = closing(body, "code", at);
        if (end < 0) {
          out.push(body.slice(tag.start, tag.end));
          break;
        }
        out.push(
          <pre key={k()}>
            <code>{body.slice(at, end)}</code>
          </pre>,
        );
        at = end + "[/code]".length;
        break;
      }
      case "qt": {
        const end = closing(body, "qt", at);
        if (end < 0) {
          out.push(body.slice(tag.start, tag.end));
          break;
        }
        let inner = body.slice(at, end);
        let author: string | undefined;
        const meta = inner.match(/^\[qtmeta([^\]]*)\]/);
        if (meta) {
          const aid = Number(attr(meta[1], "aid"));
          author = context.names.get(aid);
          inner = inner.slice(meta[0].length);
        }
        out.push(
          <blockquote key={k()}>
            {author ? <cite>{author}</cite> : null}
            {render(inner, context, depth + 1, k())}
          </blockquote>,
        );
        at = end + "[/qt]".length;
        break;
      }
      case "info": {
        const end = closing(body, "info", at);
        if (end < 0) {
          out.push(body.slice(tag.start, tag.end));
          break;
        }
        let inner = body.slice(at, end);
        let title: string | undefined;
        const titled = inner.match(/^\[title\]([\s\S]*?)\[\/title\]/);
        if (titled) {
          title = titled[1];
          inner = inner.slice(titled[0].length);
        }
        out.push(
          <div key={k()} class="info">
            {title !== undefined ? <div class="info-title">{render(title, context, depth + 1, k())}</div> : null}
            <div>{render(inner, context, depth + 1, k())}</div>
          </div>,
        );
        at = end + "[/info]".length;
        break;
      }
      default:
        // [title] or [qtmeta] outside their blocks: shown as written.
        out.push(body.slice(tag.start, tag.end));
    }
  }
  return out;
}
