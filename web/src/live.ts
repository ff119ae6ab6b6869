// Live: the temporal stream of a check (Server-Sent Events of a clone run
// every period, never stored). Closing it makes the agent stop the clone
// once no one else watches.
import { streamError, streamURL, type Result } from "./api";

export type LiveState = "connecting" | "open" | "reconnecting" | "failed" | "closed";

export interface LiveHandlers {
  result(r: Result): void;
  state(s: LiveState, detail?: string): void;
}

export class LiveStream {
  private es: EventSource | null = null;
  private closed = false;

  constructor(
    readonly checkID: string,
    readonly period: string,
    private on: LiveHandlers,
  ) {
    this.open();
  }

  private open(): void {
    this.on.state("connecting");
    const es = new EventSource(streamURL(this.checkID, this.period));
    this.es = es;
    es.onopen = () => this.on.state("open");
    es.addEventListener("result", (ev) => {
      let r: Result;
      try {
        r = JSON.parse((ev as MessageEvent).data);
      } catch {
        return; // a broken event is skipped; the next one comes in a period
      }
      this.on.result(r);
    });
    es.onerror = () => {
      if (this.closed) return;
      if (es.readyState === EventSource.CLOSED) {
        // Refused (an HTTP error, not text/event-stream): find out why.
        this.es = null;
        streamError(this.checkID, this.period).then((e) => {
          if (!this.closed) this.on.state("failed", e.message);
        });
      } else {
        this.on.state("reconnecting", "connection lost, reconnecting…");
      }
    };
  }

  close(): void {
    this.closed = true;
    if (this.es) this.es.close();
    this.es = null;
    this.on.state("closed");
  }
}
