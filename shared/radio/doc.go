// Package radio is the sensor-to-cloud radio protocol, modelled on
// WireGuard: the packet codecs, the Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s
// handshake, transport sealing with explicit counters, the replay window and
// session limits.
//
// # Wire format
//
// Integers are little-endian, as in WireGuard. Byte 0 of every packet is its
// type; no packet is longer than MaxPacketSize.
//
//	initiation (1): type | sender index u32 | Noise message 1 (112 bytes)
//	response   (2): type | sender index u32 | receiver index u32 | Noise message 2 (52 bytes)
//	transport  (3): type | receiver index u32 | counter u64 | ChaCha20-Poly1305(payload)
//
// Each handshake message repeats its sender index inside the encrypted
// payload, and the receiver checks it against the header, so a changed index
// is an authentication failure rather than a session that silently goes
// nowhere. Message 1 carries a 12-byte TAI64N timestamp, encrypted; the cloud accepts
// a handshake only if its timestamp is newer than the last one it accepted
// from that sensor. The sensor's static key travels encrypted too, so a
// connector cannot tell which sensor is speaking. psk2 places the PSK at the
// end of message 2, which lets the cloud read message 1, find the device by
// its static key, and only then unwrap that device's PSK.
//
// A transport packet's 13-byte header is the AEAD's associated data and its
// counter is the nonce (4 zero bytes, then the counter), so packets may
// arrive late, out of order or duplicated: the receiver's sliding window
// sorts that out.
package radio
