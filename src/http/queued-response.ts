/**
 * A response that never got its connection still closes (found by review, 2026-12-06). With HTTP
 * pipelining a client sends a request while its previous one is still being answered (a
 * server-sent stream, say); Node answers them in order, so the later response waits in a queue,
 * with no socket. When the connection then closes, Node 20 and 22 drop the queued response
 * without its 'close' event (Node 24 emits it). Everything that waits for that event — the request
 * body's share of GATEWAY_BODY_MEMORY (src/gateway/read-body.ts), the watch on an answer in flight
 * (src/gateway/open-responses.ts), the abort of the request to R (src/gateway/response-handler.ts)
 * — would wait for ever: bytes held, an entry kept, R's request left open.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

/** Make `res`, when it is queued behind another response, close when its connection does. */
export function closeWithConnection(req: IncomingMessage, res: ServerResponse): void {
  if (res.socket) return; // it has its connection: Node emits 'close' itself
  const socket = req.socket;
  const gone = () => {
    if (res.socket || res.destroyed) return; // given its connection after all, or already ended (Node 24)
    res.destroy();
    res.emit('close');
  };
  socket.once('close', gone);
  res.once('socket', () => socket.off('close', gone));
}
