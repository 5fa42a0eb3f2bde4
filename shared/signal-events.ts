/**
 * The socket.io event contract between a weft node and a signal server, for
 * both ends, plus runtime validators (types are not validation).
 *
 * Protocol, in order:
 *
 *   server → client  challenge   { nonce: 32 bytes }                      on connection
 *   client → server  register    { publicKey, network, signature } + ack RegisterAck
 *                    signature = Ed25519 over registrationMessage(host, nonce), where host is
 *                    the host (authority) of the URL the client connected to. The server
 *                    accepts only the hosts of its own configured public URLs ('wrong-server'
 *                    otherwise), so a signature made for one server is worthless on another,
 *                    and a server cannot pass a client's registration on to a different one.
 *                    The key must meet the server's identity puzzle ('weak-identity').
 *                    Node id = first 160 bits of SHA-256(publicKey). (Older clients also sent
 *                    `servers`, the URLs they knew; it is ignored: servers are listed only
 *                    from the operator's own configuration.)
 *   server → client  rejected    { reason }     no valid register in time, abuse, or server full;
 *                                               the server disconnects right after
 *   server → client  replaced    { reason: 'replaced' }  the same id registered again elsewhere
 *                    The ack may carry `iceServers` (STUN/TURN servers for RTCPeerConnection,
 *                    TURN credentials made for this registration) and `iceTtlMs` (how long those
 *                    credentials last): what the operator configured. A client validates them
 *                    like anything else from the server and may override them.
 *   client → server  peers       { max? } + ack PeersAck                  a fresh bootstrap sample
 *                                               (and fresh ICE credentials, as in the register ack)
 *   client → server  signal      { to, data } + ack SignalAck             data: a JSON value
 *                    or, to a server whose register ack said `quietSignals: true`, without the
 *                    ack: nothing comes back unless it fails, then
 *   server → client  signal-error { to, reason }   (one fewer packet per signal for the server)
 *   server → client  signal      { from, data }
 *   client → server  relay       { to, frame }   no ack                   opaque bytes, quota'd
 *   server → client  relay       { from, frame }
 *   server → client  relay-error { to, reason }  the frame to `to` was dropped
 *
 * Only nodes of the same network ever see each other. Binary fields arrive as
 * Buffer (Node), ArrayBuffer or Uint8Array (browser); every validator
 * normalises them to a plain Uint8Array and returns null for anything else.
 *
 * The types and limits are in signal/types.ts, the checks of values in
 * signal/values.ts, one validator per event in signal/parse.ts.
 *
 * Pure: no socket.io import (not even types), no DOM, no node:*.
 */
export * from './signal/parse.ts'
export * from './signal/types.ts'
export * from './signal/values.ts'
