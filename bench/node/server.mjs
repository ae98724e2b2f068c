// Node.js peers of the benchmark: `node server.mjs KIND PORT MODE`.
// KIND ws: the `ws` package's WebSocketServer with its defaults (no permessage-deflate);
// KIND socketio: socket.io on Node with the same events as the python-socketio peer.
// MODE echo sends every text message back; fanout sends it to every other connection.
// bench/run.py pins the process to the server core before it starts.
import { createServer } from "node:http";
import { WebSocketServer } from "ws";
import { Server } from "socket.io";

const [kind, portText, mode] = process.argv.slice(2);
const port = Number(portText);
const http = createServer((request, response) => {
  response.writeHead(404).end();
});

if (kind === "ws") {
  const wss = new WebSocketServer({ server: http, path: "/ws", maxPayload: 65536 });
  wss.on("connection", (socket) => {
    socket.on("message", (data, isBinary) => {
      if (mode === "echo") {
        socket.send(data, { binary: isBinary });
        return;
      }
      for (const peer of wss.clients) {
        if (peer !== socket) peer.send(data, { binary: isBinary });
      }
    });
  });
} else if (kind === "socketio") {
  const io = new Server(http, { transports: ["websocket"], cors: { origin: "*" } });
  io.on("connection", (socket) => {
    socket.on("echo", (data) => socket.emit("echo", data));
    socket.on("publish", (data) => socket.broadcast.emit("publish", data));
  });
} else {
  console.error(`unknown kind ${kind}: expected ws or socketio`);
  process.exit(2);
}

http.listen({ host: "127.0.0.1", port, backlog: 2048 });
process.on("SIGTERM", () => process.exit(0));
