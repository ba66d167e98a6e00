/**
 * A response that never got its connection still closes (found by review, 2026-12-06). With HTTP
 * pipelining a client sends a request while its previous one is still being answered (a
 * server-sent stream, say); Node answers them in order, so the later response waits in a queue,
 * with no socket. Node 20 and 22 emit no 'close' for such a response — neither when its
 * connection closes nor when the server destroys it (a gateway answer cut by a revocation, R
 * failing midway) — while Node 24 emits it for both. Everything that waits for that event — the
 * request body's share of GATEWAY_BODY_MEMORY (src/gateway/read-body.ts), the watch on an answer
 * in flight (src/gateway/open-responses.ts), the abort of the request to R
 * (src/gateway/response-handler.ts) — would wait for ever: bytes held, an entry kept, R's request
 * left open. Here such a response emits 'close' once, a tick after either happens (a tick: Node 24
 * emits its own on the next tick, which then comes first), unless it got its connection meanwhile.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

/** Per connection, what to do for each of its queued responses when it closes: one 'close' listener however many are queued. */
const queuedOn = new WeakMap<Socket, Set<() => void>>();

/** Make `res`, when it is queued behind another response, close when its connection does or when it is destroyed. */
export function closeWithConnection(req: IncomingMessage, res: ServerResponse): void {
  if (res.socket) return; // it has its connection: Node emits 'close' itself
  let closed = false;
  res.once('close', () => (closed = true));
  const close = () => {
    if (!closed && !res.socket) res.emit('close');
  };
  const destroy = res.destroy;
  res.destroy = function (this: ServerResponse, error?: Error) {
    const destroyed = destroy.call(this, error);
    if (!this.socket) process.nextTick(close);
    return destroyed;
  };
  const gone = () => {
    if (closed || res.socket) return;
    if (!res.destroyed)
      res.destroy(); // schedules the 'close'
    else process.nextTick(close);
  };
  const socket = req.socket;
  let queued = queuedOn.get(socket);
  if (!queued) {
    const onClose = new Set<() => void>();
    queuedOn.set(socket, (queued = onClose));
    socket.once('close', () => {
      for (const fn of onClose) fn();
      onClose.clear();
    });
  }
  queued.add(gone);
  const own = queued;
  res.once('socket', () => own.delete(gone));
}
