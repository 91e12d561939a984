// Package keybackup seals and opens key-registry backups: one object per
// run, written to every backup bucket, from which a restore rebuilds the
// device, lookup, cloud, connector and kit records.
//
// # Object format
//
// Integers are little-endian, as in shared/radio.
//
//	magic "SSKB" | version u8 | manifest length u32 | manifest (JSON) | body
//	body = nonce (24 bytes) | XChaCha20-Poly1305(data key, nonce, CBOR records, AD)
//	AD   = magic | version | the manifest's JSON with bodySha256 empty
//
// The manifest is plaintext, so an operator can read what a backup holds
// (project, time, counts, the KMS versions it depends on) without any key,
// but it is authenticated: it is the AEAD's associated data, less the body
// hash, which cannot cover itself. The data key is fresh for each backup
// and is stored in the manifest wrapped by the backup KEK, a KMS CryptoKey
// apart from the device key, with the project and object name as KMS's
// associated data. Bucket access alone therefore reveals nothing, and an
// object copied under another name or into another project does not open.
//
// # Opening
//
// Open checks, in order, each failure its own error: the magic and version
// (ErrNotBackup, ErrVersion, ErrTruncated), the manifest (ErrManifest), the
// project and object name (ErrForeignProject, ErrMisnamed), the KMS version
// that wrapped the data key (ErrKMSVersion: it must belong to the
// configured backup key), the body's SHA-256 (ErrTampered), the unwrap
// (ErrTampered if KMS says the ciphertext or its AAD are wrong, ErrUnwrap
// otherwise), the AEAD (ErrTampered) and the CBOR records, decoded with
// strict limits and each checked as a restore would (ErrRecords). A
// restore opens the whole object before it writes anything, so a refused
// backup changes nothing.
package keybackup
