// The page's words in English and Japanese: Japanese when the browser prefers it (or
// the user chose it in the settings), English otherwise.

const en = {
  appName: "Hayabusa",
  email: "Email",
  password: "Password",
  signIn: "Sign in",
  signInFailed: "The email or the password is wrong.",
  signOut: "Sign out",
  signOutEverywhere: "Sign out everywhere",
  rooms: "Rooms",
  filterRooms: "Filter rooms",
  message: "Message",
  send: "Send",
  messages: "Messages",
  newMessages: "New messages",
  reconnecting: "Reconnecting…",
  unread: (n: number) => `${n} unread`,
  mentions: (n: number) => `${n} mentions`,
  tasks: (n: number) => `${n} tasks`,
  edit: "Edit",
  delete: "Delete",
  save: "Save",
  cancel: "Cancel",
  edited: "(edited)",
  toAll: "TO ALL",
  reply: "Re",
  language: "Language",
  noRoom: "Choose a room.",
  myChat: "My chat",
  deleteConfirm: "Delete this message?",
  jumpToLatest: "Jump to latest",
};

export type Words = typeof en;

const ja: Words = {
  appName: "Hayabusa",
  email: "メールアドレス",
  password: "パスワード",
  signIn: "ログイン",
  signInFailed: "メールアドレスまたはパスワードが違います。",
  signOut: "ログアウト",
  signOutEverywhere: "すべての端末からログアウト",
  rooms: "チャット一覧",
  filterRooms: "チャットを絞り込む",
  message: "メッセージ",
  send: "送信",
  messages: "メッセージ一覧",
  newMessages: "未読メッセージ",
  reconnecting: "再接続中…",
  unread: (n: number) => `未読 ${n} 件`,
  mentions: (n: number) => `メンション ${n} 件`,
  tasks: (n: number) => `タスク ${n} 件`,
  edit: "編集",
  delete: "削除",
  save: "保存",
  cancel: "キャンセル",
  edited: "（編集済み）",
  toAll: "TO ALL",
  reply: "返信",
  language: "言語",
  noRoom: "チャットを選んでください。",
  myChat: "マイチャット",
  deleteConfirm: "このメッセージを削除しますか？",
  jumpToLatest: "最新へ移動",
};

export type Lang = "en" | "ja";

const LANG_KEY = "hayabusa.lang";

export function preferredLang(): Lang {
  const chosen = localStorage.getItem(LANG_KEY);
  if (chosen === "en" || chosen === "ja") return chosen;
  for (const lang of navigator.languages ?? [navigator.language]) {
    if (lang.toLowerCase().startsWith("ja")) return "ja";
    if (lang.toLowerCase().startsWith("en")) return "en";
  }
  return "en";
}

export function chooseLang(lang: Lang): void {
  localStorage.setItem(LANG_KEY, lang);
}

export function words(lang: Lang): Words {
  return lang === "ja" ? ja : en;
}
