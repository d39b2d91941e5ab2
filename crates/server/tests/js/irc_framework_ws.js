// irc-framework (the IRC library Kiwi IRC is built on) with its WebSocket transport, against
// chinwag's /ws. Node 20 has no global WebSocket, so the `ws` package stands in for the
// browser's, verifying the server's certificate against the file given and sending the Origin
// of a third-party web client. Prints what happened, one event a line, for the Rust test
// (crates/server/tests/irc_framework.rs) that runs it.
//
// Usage: node irc_framework_ws.js PORT CA_FILE ORIGIN NICK CHANNEL MESSAGE
'use strict';

const fs = require('fs');
const WS = require('ws');
const IRC = require('irc-framework');
const WebSocketTransport = require('irc-framework/src/transports/websocket');

const [port, caFile, origin, nick, channel, message] = process.argv.slice(2);
const ca = fs.readFileSync(caFile);

globalThis.WebSocket = class extends WS {
    constructor(url, protocols) {
        super(url, protocols, { ca, origin, perMessageDeflate: true });
    }
};

setTimeout(() => {
    console.log('timeout');
    process.exit(2);
}, 20000);

const client = new IRC.Client();

client.on('registered', () => {
    const socket = client.connection.transport.socket;
    console.log(`registered protocol=${socket.protocol} extensions=${socket.extensions || '-'}`);
    client.join(channel);
});

client.on('join', (event) => {
    if (event.nick === nick && event.channel === channel) {
        console.log(`joined ${channel}`);
        client.say(channel, message);
    }
});

client.on('message', (event) => {
    console.log(`message from=${event.nick} target=${event.target} text=${event.message}`);
    if (event.message === 'bye') {
        client.quit('done');
    }
});

// IRC_DEBUG=1 shows the transport's own log on stderr.
if (process.env.IRC_DEBUG) {
    client.on('debug', (text) => console.error(`debug: ${text}`));
}
client.on('socket close', (error) => {
    if (error) {
        console.error(`socket closed: ${error.message}`);
    }
});

client.on('close', () => {
    console.log('closed');
    process.exit(0);
});

// As Kiwi IRC connects: every option goes to connect(), which replaces the constructor's.
client.connect({
    host: '127.0.0.1',
    port: Number(port),
    tls: true,
    path: '/ws',
    nick,
    username: nick,
    gecos: 'irc-framework over WebSocket',
    transport: WebSocketTransport,
    websocket_protocol: 'text.ircv3.net',
    auto_reconnect: false,
});
