// The account's op stream over /v2/sync/ws, resumed from the last revision after any
// disconnect (with backoff), so that nothing is missed; the state is shown to the
// user ("reconnecting"), never hidden behind a stale screen.

import { call, type Op } from "./api";

export type SyncState = "connecting" | "live" | "reconnecting";

export interface SyncHandlers {
  /** Ops in order. */
  ops(ops: Op[]): void;
  /** The connection state changed. */
  state(state: SyncState): void;
  /** The revision could not be resumed: reload everything, then go on live. */
  resync(): Promise<void>;
  /** The session ended (signed out elsewhere). */
  signedOut(): void;
}

export class Sync {
  private socket: WebSocket | null = null;
  private failures = 0;
  private stopped = false;
  private timer: number | undefined;

  constructor(
    private account: number,
    private handlers: SyncHandlers,
  ) {}

  private get key(): string {
    return `hayabusa.revision.${this.account}`;
  }

  async start(): Promise<void> {
    if (!localStorage.getItem(this.key)) await this.fresh();
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.socket?.close(1000);
  }

  /** Takes the current revision (after the caller loaded everything). */
  private async fresh(): Promise<void> {
    const now = await call<{ revision: string }>("GET", "/v2/sync");
    if (now.status === 401) {
      this.handlers.signedOut();
      throw new Error("signed out");
    }
    if (now.status !== 200) throw new Error(`sync: HTTP ${now.status}`);
    localStorage.setItem(this.key, now.body.revision);
  }

  private connect(): void {
    if (this.stopped) return;
    const since = localStorage.getItem(this.key) ?? "";
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(
      `${scheme}://${location.host}/v2/sync/ws?since=${encodeURIComponent(since)}`,
    );
    this.socket = socket;
    this.handlers.state(this.failures === 0 ? "connecting" : "reconnecting");
    let batch: Op[] = [];
    let flush: number | undefined;
    socket.onopen = () => {
      this.failures = 0;
      this.handlers.state("live");
    };
    socket.onmessage = (event) => {
      const op = JSON.parse(String(event.data)) as Op;
      batch.push(op);
      localStorage.setItem(this.key, op.revision);
      // Ops of one burst are handed over together (one render).
      if (flush === undefined) {
        flush = window.setTimeout(() => {
          flush = undefined;
          const ops = batch;
          batch = [];
          this.handlers.ops(ops);
        }, 0);
      }
    };
    socket.onclose = (event) => {
      if (this.socket !== socket || this.stopped) return;
      this.socket = null;
      if (event.code === 4003) {
        this.handlers.signedOut();
        return;
      }
      this.failures++;
      this.handlers.state("reconnecting");
      const wait = Math.min(30_000, 500 * 2 ** Math.min(this.failures - 1, 6));
      this.timer = window.setTimeout(() => void this.retry(), wait * (0.8 + Math.random() * 0.4));
    };
  }

  private async retry(): Promise<void> {
    // The upgrade is refused (not closed) when the revision cannot be resumed or
    // the session ended: ask the long-poll endpoint why.
    if (this.failures >= 3) {
      const since = localStorage.getItem(this.key) ?? "";
      const probe = await call("GET", "/v2/sync", { since, timeout: "0", limit: "1" }).catch(
        () => null,
      );
      if (probe?.status === 401) {
        this.handlers.signedOut();
        return;
      }
      if (probe && (probe.status === 400 || probe.status === 410)) {
        await this.fresh().catch(() => undefined);
        await this.handlers.resync();
      }
    }
    this.connect();
  }
}
