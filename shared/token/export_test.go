package token

// NoCache turns off ks's cache of verified tokens, so that every Verify
// checks a signature (for the cold benchmark).
func NoCache(ks *KeySet) { ks.cache = nil }

// CachedTokens is how many verified tokens ks remembers.
func CachedTokens(ks *KeySet) int { return ks.cache.len() }

// SetCacheSize replaces ks's cache of verified tokens with an empty one of
// the given bound.
func SetCacheSize(ks *KeySet, n int) { ks.cache = newVerified(n) }
