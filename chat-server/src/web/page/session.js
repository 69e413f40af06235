// The connection to the server: the WebSocket, logging in, reconnecting and resuming with nothing lost.
//
// The session token, the cursor (the sequence number of the newest message received), the next send key
// and the sends not yet acknowledged are kept in sessionStorage, so a lost connection (or a reload of the
// tab) resumes the session: the server sends what was missed, once; sends not acknowledged are sent
// again with their key, and the server stores each key once. A password is kept in memory only.

const STORE = {
  name: "chat.name",
  token: "chat.token",
  cursor: "chat.cursor",
  nextKey: "chat.nextKey",
  pending: "chat.pending",
};
// Login refusals after which trying again cannot help: back to the login form.
const FATAL = new Set(["name_taken", "invalid_name", "auth_failed", "bad_command", "protocol"]);
const FIRST_RETRY_MS = 500;
const MAX_RETRY_MS = 10000;

function load(key, fallback) {
  try {
    const value = sessionStorage.getItem(key);
    return value === null ? fallback : JSON.parse(value);
  } catch {
    return fallback;
  }
}

function save(key, value) {
  try {
    sessionStorage.setItem(key, JSON.stringify(value));
  } catch {
    // Storage full or disabled: the session still works, it just cannot survive a reload.
  }
}

/** The sequence number of a message ID (`origin:seq`). */
export function seqOf(id) {
  const seq = Number(String(id).split(":").pop());
  return Number.isSafeInteger(seq) ? seq : 0;
}

export class Session {
  /**
   * @param {object} on callbacks: event(ev) for every event the page shows, state(state, detail),
   *   loginFailed(message)
   */
  constructor(on) {
    this.on = on;
    this.ws = null;
    this.secret = null; // {password} or {token}, in memory only
    this.name = load(STORE.name, null);
    this.token = load(STORE.token, null);
    this.cursor = load(STORE.cursor, 0);
    this.nextKey = load(STORE.nextKey, 1);
    this.pending = new Map(load(STORE.pending, []).map((cmd) => [cmd.key, cmd]));
    this.ready = false;
    this.attempt = 0;
    this.retryTimer = null;
    this.leaving = false;
    this.everReady = false;
  }

  /** Whether a session of this tab may be resumed without asking for anything. */
  canResume() {
    return this.name !== null && this.token !== null;
  }

  /** Logs in as `name` (a new session, or the stored one if it is the same name). */
  login(name, secret) {
    if (name !== this.name) {
      this.forget();
      this.name = name;
      save(STORE.name, name);
    }
    this.secret = secret;
    this.leaving = false;
    this.connect();
  }

  /** Ends the session for good. */
  leave() {
    this.leaving = true;
    if (this.ws && this.ready) this.ws.send(JSON.stringify({ type: "leave" }));
    if (this.ws) this.ws.close(1000, "leave");
    this.forget();
    this.on.state("offline", "you left");
  }

  /** Sends a message; it is kept until the server acknowledges it. */
  send(text, to) {
    const cmd = { type: "send", text, key: this.nextKey++ };
    Object.assign(cmd, to);
    save(STORE.nextKey, this.nextKey);
    this.pending.set(cmd.key, cmd);
    this.savePending();
    if (this.ready) this.ws.send(JSON.stringify(cmd));
    return cmd.key;
  }

  /** Sends any other command (only while connected: it is not kept). */
  request(cmd) {
    if (!this.ready) return false;
    this.ws.send(JSON.stringify(cmd));
    return true;
  }

  forget() {
    for (const key of Object.values(STORE)) sessionStorage.removeItem(key);
    this.token = null;
    this.cursor = 0;
    this.pending.clear();
    this.name = null;
  }

  savePending() {
    save(STORE.pending, [...this.pending.values()]);
  }

  connect() {
    clearTimeout(this.retryTimer);
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}/ws`);
    this.ws = ws;
    this.ready = false;
    this.on.state(this.attempt === 0 ? "connecting" : "reconnecting", "logging in");
    ws.onopen = () => {
      const login = { type: "login", name: this.name };
      if (this.secret) Object.assign(login, this.secret);
      if (this.token) login.resume = { token: this.token, cursor: this.cursor };
      ws.send(JSON.stringify(login));
    };
    ws.onmessage = (e) => {
      let ev;
      try {
        ev = JSON.parse(e.data);
      } catch {
        return;
      }
      this.handle(ev);
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ready = false;
      if (this.leaving || this.fatal) {
        this.fatal = false;
        return;
      }
      this.attempt += 1;
      const wait = Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** (this.attempt - 1)) * (0.75 + Math.random() / 2);
      this.on.state("reconnecting", `disconnected: reconnecting in ${(wait / 1000).toFixed(1)} s (attempt ${this.attempt})`);
      this.retryTimer = setTimeout(() => this.connect(), wait);
    };
  }

  handle(ev) {
    switch (ev.type) {
      case "ready": {
        this.ready = true;
        this.attempt = 0;
        this.token = ev.token;
        save(STORE.token, this.token);
        this.on.state("connected", "connected");
        const first = !this.everReady;
        this.everReady = true;
        this.on.event(ev, { first });
        // Sends the server has not acknowledged go again, in order, with their keys.
        for (const key of [...this.pending.keys()].sort((a, b) => a - b)) {
          this.ws.send(JSON.stringify(this.pending.get(key)));
        }
        return;
      }
      case "message": {
        const seq = seqOf(ev.id);
        if (seq <= this.cursor) return; // a resume replays from the cursor: seen already
        this.cursor = seq;
        save(STORE.cursor, seq);
        break;
      }
      case "sent":
        if (this.pending.delete(ev.key)) this.savePending();
        break;
      case "error":
        if (!this.ready && FATAL.has(ev.code)) {
          this.fatal = true;
          if (ev.code === "auth_failed" && this.token && !this.secret) {
            // A server with accounts wants the password again to resume: keep the session.
            this.on.loginFailed("enter your password (or token) to resume");
            return;
          }
          this.forget();
          this.on.loginFailed(ev.message);
          return;
        }
        if (ev.key !== undefined) {
          if (ev.code === "rate_limited") {
            const cmd = this.pending.get(ev.key);
            setTimeout(() => cmd && this.ready && this.pending.has(cmd.key) && this.ws.send(JSON.stringify(cmd)),
              ev.retry_after_ms);
            return;
          }
          if (this.pending.delete(ev.key)) this.savePending();
        }
        break;
      default:
        break;
    }
    this.on.event(ev, {});
  }
}
