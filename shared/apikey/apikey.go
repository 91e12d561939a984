// Package apikey is the additional data that binds the API's KMS-wrapped
// secrets to the records that hold them. The API wraps and unwraps with
// it, and the operators' re-wrap must use exactly the same bytes, so it
// lives here rather than in either.
package apikey

const (
	keyPrefix    = "sealedsense/serviceaccount-key/"
	pageKeyLabel = "sealedsense/api-page-token-key"
)

// SecretAAD binds a service-account key's wrapped secret to the key and
// its account: a wrapped secret copied to another key, or a key document
// whose account was edited, does not unwrap.
func SecretAAD(keyID, account string) []byte {
	return []byte(keyPrefix + keyID + "/account/" + account)
}

// LegacySecretAAD is what keys minted before SecretAAD bound the account
// were wrapped with: the key id alone. Such a key still works, but its
// document's account is not authenticated; re-wrapping or re-minting it
// binds it.
func LegacySecretAAD(keyID string) []byte { return []byte(keyPrefix + keyID) }

// StoredSecretAAD is the additional data a stored key's secret was
// wrapped with: SecretAAD if the key is account-bound, else
// LegacySecretAAD.
func StoredSecretAAD(keyID, account string, accountBound bool) []byte {
	if accountBound {
		return SecretAAD(keyID, account)
	}
	return LegacySecretAAD(keyID)
}

// PageKeyAAD is the additional data of the API's page-token key, a
// singleton: it names only the key's purpose.
func PageKeyAAD() []byte { return []byte(pageKeyLabel) }
