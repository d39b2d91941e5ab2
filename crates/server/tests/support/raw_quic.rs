//! QUIC packets made by hand for floods: a client's first Initial, sent from a plain UDP socket
//! by a "client" that keeps no state and never answers.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::net::UdpSocket;

use super::WAIT;

/// The source connection id of a long-header packet we made (the id the server answers to).
pub fn source_cid(packet: &[u8]) -> Vec<u8> {
    let dcid_len = usize::from(packet[5]);
    let scid_at = 6 + dcid_len;
    packet[scid_at + 1..scid_at + 1 + usize::from(packet[scid_at])].to_vec()
}

/// The destination connection id of a long-header packet from the server, if it is one.
pub fn destination_cid(packet: &[u8]) -> Option<&[u8]> {
    if packet.first()? & 0x80 == 0 {
        return None;
    }
    let len = usize::from(*packet.get(5)?);
    packet.get(6..6 + len)
}

/// A client's first Initial packet (a full ClientHello, padded to 1200 bytes) for a handshake
/// that nobody will continue: the client's state is dropped as soon as the packet is made.
pub fn initial(server: SocketAddr, config: &quinn::ClientConfig) -> Vec<u8> {
    let mut endpoint = quinn_proto::Endpoint::new(Arc::new(quinn_proto::EndpointConfig::default()), None, false, None);
    let now = Instant::now();
    let (_, mut connection) = endpoint.connect(now, config.clone(), server, "localhost").expect("connect");
    let mut packet = Vec::new();
    let transmit = connection.poll_transmit(now, 1, &mut packet).expect("an Initial to send");
    packet.truncate(transmit.size);
    packet
}

/// Sends `count` Initials from `socket` and waits until the server has answered each (an
/// Initial of its own, a Retry or a refusal), so that the flood goes as fast as the server
/// takes it without overflowing its socket.
pub async fn flood_from(socket: &UdpSocket, server: SocketAddr, config: &quinn::ClientConfig, count: usize) {
    let mut waiting = HashSet::new();
    for _ in 0..count {
        let packet = initial(server, config);
        waiting.insert(source_cid(&packet));
        socket.send_to(&packet, server).await.expect("send an Initial");
    }
    let mut buf = vec![0u8; 65_536];
    let deadline = tokio::time::Instant::now() + WAIT;
    while !waiting.is_empty() {
        let (n, _) = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf))
            .await
            .expect("the server answers every Initial within the wait")
            .expect("receive");
        if let Some(cid) = destination_cid(&buf[..n]) {
            waiting.remove(cid);
        }
    }
}
