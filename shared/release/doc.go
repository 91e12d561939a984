// Package release is the signed software-release format that a sensor or a
// connector verifies before it installs an update: a manifest signed by a
// Cloud KMS release key, the image in numbered chunks, and the device-side
// assembly that accepts a release and checks the image it rebuilds.
//
// # Wire format
//
// Everything is CBOR (RFC 8949) maps with small integer keys. What is signed
// is encoded with the Core Deterministic rules (RFC 8949 §4.2.1), and Open
// refuses a body that is not in that form, so one manifest has exactly one
// encoding.
//
//	signed   {1: body bstr, 2: sig bstr}
//	manifest {1: target tstr, 2: version uint, 3: minFrom uint, 4: size uint,
//	          5: chunkSize uint, 6: imageSHA256 bstr(32), 7: releaseID bstr(16),
//	          8: keyVersion uint}
//	chunk    {1: releaseID bstr(16), 2: index uint, 3: data bstr}
//
// # What is signed, and why this way
//
// The signature is ECDSA P-256 over SHA-256(Domain || body), DER-encoded, as
// Cloud KMS returns it for EC_SIGN_P256_SHA256 when AsymmetricSign is given
// that digest (see Digest). The domain string separates this use of the
// release key from any other: a signature made over some other message of
// ours can never be replayed as a release, and no release signature can be
// replayed elsewhere, even if one key were ever shared. The domain ends in a
// NUL so that no body can extend it into another domain string.
//
// The manifest carries the key version that signed it, so a device trusts a
// set of versions (rotation without a flag day) and a version it does not
// know is refused before any curve arithmetic. The body is decoded before the
// signature is checked only to find that version; every other check runs on
// an authenticated manifest.
//
// Chunks are not signed: the manifest's SHA-256 of the whole image covers
// them, checked once the last chunk arrives. A chunk only has to name its
// release and fit its slot, so a stray or stale chunk is refused cheaply and
// a tampered one costs the download, never the device.
//
// # Refusals
//
// Every error that Open, Begin, Add, Image and ParseChunk return wraps a
// *Refusal whose Reason a device reports to the cloud; Reason values are on
// the wire and are never renumbered. BootFailed is the one reason no
// function here returns: a device reports it for an image that verified but
// did not boot.
package release
