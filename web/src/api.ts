// The server's API, as the signed-in page calls it: the session cookie goes along by
// itself (same origin); writes carry the session's CSRF token.

let csrfToken = "";

export function setCsrf(token: string): void {
  csrfToken = token;
}

export interface Answer<T> {
  status: number;
  body: T;
}

export class ApiError extends Error {
  constructor(
    public status: number,
    message: string,
  ) {
    super(message);
  }
}

export async function call<T>(
  method: "GET" | "POST" | "PUT" | "DELETE",
  path: string,
  form?: Record<string, string>,
): Promise<Answer<T>> {
  const headers: Record<string, string> = {};
  let body: string | undefined;
  let url = path;
  if (form && (method === "POST" || method === "PUT")) {
    headers["content-type"] = "application/x-www-form-urlencoded";
    body = new URLSearchParams(form).toString();
  } else if (form) {
    url += "?" + new URLSearchParams(form).toString();
  }
  if (method !== "GET") headers["x-csrf-token"] = csrfToken;
  const response = await fetch(url, { method, headers, body, credentials: "same-origin" });
  const text = await response.text();
  const parsed = text ? JSON.parse(text) : null;
  return { status: response.status, body: parsed as T };
}

/** Calls and throws the server's first error unless the answer is a success. */
export async function must<T>(
  method: "GET" | "POST" | "PUT" | "DELETE",
  path: string,
  form?: Record<string, string>,
): Promise<T> {
  const answer = await call<T>(method, path, form);
  if (answer.status >= 200 && answer.status < 300) return answer.body;
  const errors = (answer.body as unknown as { errors?: string[] } | null)?.errors;
  throw new ApiError(answer.status, errors?.[0] ?? `HTTP ${answer.status}`);
}

export interface Me {
  account_id: number;
  room_id: number;
  name: string;
}

export interface Room {
  room_id: number;
  name: string;
  type: "my" | "direct" | "group";
  role: string;
  sticky: boolean;
  unread_num: number;
  mention_num: number;
  mytask_num: number;
  last_update_time: number;
}

export interface Message {
  message_id: string;
  account: { account_id: number; name: string };
  body: string;
  send_time: number;
  update_time: number;
}

export interface Member {
  account_id: number;
  name: string;
  role: string;
}

/** One sync op: `type`, `revision` and the op's own fields. */
export interface Op {
  type: string;
  revision: string;
  room_id?: number;
  message_id?: string;
  account_id?: number;
  body?: string;
  send_time?: number;
  update_time?: number;
  to_all?: boolean;
}
