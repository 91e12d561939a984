// Package token issues and verifies access tokens — ES256 JWTs signed by a
// Cloud KMS key, one KMS call per token, verified locally with cached public
// keys — and verifies the HS256 assertions service accounts exchange for them.
package token

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"hash/crc32"
	"math/big"
	"sync"
	"time"

	"cloud.google.com/go/kms/apiv1/kmspb"
	"github.com/golang-jwt/jwt/v5"
	"github.com/googleapis/gax-go/v2"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// ErrInvalid is wrapped by every refusal of a token or assertion.
var ErrInvalid = errors.New("token: invalid")

// KMS is what the package needs of the Cloud KMS client;
// *kms.KeyManagementClient is one.
type KMS interface {
	AsymmetricSign(ctx context.Context, req *kmspb.AsymmetricSignRequest, opts ...gax.CallOption) (*kmspb.AsymmetricSignResponse, error)
	GetPublicKey(ctx context.Context, req *kmspb.GetPublicKeyRequest, opts ...gax.CallOption) (*kmspb.PublicKey, error)
}

// Claims of an access token.
type Claims struct {
	jwt.RegisteredClaims
	Account string `json:"sa"`  // the service account's id
	Key     string `json:"key"` // the key the token was exchanged with, so revoking it stops the token
}

// MaxLifetime bounds an access token's and an assertion's life.
const MaxLifetime = time.Hour

// ErrIntegrity means a KMS response failed its CRC32C or name check, or KMS
// did not confirm that it verified the request's checksum. Such a response
// is discarded and the call retried a bounded number of times.
var ErrIntegrity = errors.New("token: kms integrity check failed")

// integrityAttempts bounds the retries on a corrupted KMS exchange.
const integrityAttempts = 3

// maxTokenLen bounds what Verify and VerifyAssertion will parse.
const maxTokenLen = 4096

// crc32c is KMS's integrity checksum; MakeTable returns the standard
// library's one Castagnoli table.
func crc32c(b []byte) int64 { return int64(crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli))) }

// KeyID is the JWT kid of a KMS key version: short, stable and URL-safe,
// without naming the project's key resource.
func KeyID(keyVersion string) string {
	h := sha256.Sum256([]byte(keyVersion))
	return base64.RawURLEncoding.EncodeToString(h[:12])
}

// Signer issues access tokens with one KMS AsymmetricSign call each.
type Signer struct {
	kms     KMS
	version string
	method  *kmsMethod
}

// NewSigner returns a Signer for an EC_SIGN_P256_SHA256 key version.
func NewSigner(k KMS, keyVersion string) *Signer {
	return &Signer{kms: k, version: keyVersion, method: &kmsMethod{}}
}

// kmsMethod is ES256 with the private key in KMS. It is used only to sign;
// it is not registered, so parsing keeps the standard ES256 verifier.
type kmsMethod struct{}

type kmsKey struct {
	ctx     context.Context
	kms     KMS
	version string
}

func (*kmsMethod) Alg() string { return "ES256" }

func (*kmsMethod) Verify(string, []byte, any) error {
	return fmt.Errorf("%w: the KMS method only signs", ErrInvalid)
}

func (*kmsMethod) Sign(signingString string, key any) ([]byte, error) {
	k, ok := key.(kmsKey)
	if !ok {
		return nil, errors.New("token: sign: not a KMS key")
	}
	digest := sha256.Sum256([]byte(signingString))
	req := &kmspb.AsymmetricSignRequest{
		Name:         k.version,
		Digest:       &kmspb.Digest{Digest: &kmspb.Digest_Sha256{Sha256: digest[:]}},
		DigestCrc32C: wrapperspb.Int64(crc32c(digest[:])),
	}
	var lastErr error
	for range integrityAttempts {
		resp, err := k.kms.AsymmetricSign(k.ctx, req)
		if err != nil {
			return nil, fmt.Errorf("token: kms sign with %s: %w", k.version, err)
		}
		if lastErr = checkSign(k.version, resp); lastErr == nil {
			return joseSignature(resp.GetSignature())
		}
	}
	return nil, fmt.Errorf("token: kms sign with %s: %w", k.version, lastErr)
}

func checkSign(version string, resp *kmspb.AsymmetricSignResponse) error {
	switch {
	case !resp.GetVerifiedDigestCrc32C():
		return fmt.Errorf("%w: digest checksum not verified", ErrIntegrity)
	case resp.GetSignatureCrc32C() == nil || resp.GetSignatureCrc32C().GetValue() != crc32c(resp.GetSignature()):
		return fmt.Errorf("%w: signature checksum mismatch", ErrIntegrity)
	case resp.GetName() != version:
		return fmt.Errorf("%w: answered by another key version", ErrIntegrity)
	}
	return nil
}

// joseSignature converts an ASN.1 DER ECDSA P-256 signature to the 64-byte
// R||S form JOSE uses (RFC 7518 section 3.4), each half left-padded to 32
// bytes.
func joseSignature(der []byte) ([]byte, error) {
	var sig struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(der, &sig)
	if err != nil || len(rest) > 0 || sig.R == nil || sig.S == nil ||
		sig.R.Sign() <= 0 || sig.S.Sign() <= 0 || sig.R.BitLen() > 256 || sig.S.BitLen() > 256 {
		return nil, errors.New("token: kms sign: malformed signature")
	}
	out := make([]byte, 64)
	sig.R.FillBytes(out[:32])
	sig.S.FillBytes(out[32:])
	return out, nil
}

// Sign issues a token for c.
func (s *Signer) Sign(ctx context.Context, c Claims) (string, error) { return s.sign(ctx, c) }

// sign makes any ES256 JWT with the KMS key, one call each.
func (s *Signer) sign(ctx context.Context, c jwt.Claims) (string, error) {
	t := jwt.NewWithClaims(s.method, c)
	t.Header["kid"] = KeyID(s.version)
	return t.SignedString(kmsKey{ctx: ctx, kms: s.kms, version: s.version})
}

// keyfunc finds a token's key by its kid. A KMS failure, which is no
// verdict on the token, is left in *kmsErr for the caller to tell apart.
func (ks *KeySet) keyfunc(ctx context.Context, kmsErr *error) jwt.Keyfunc {
	return func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		k, err := ks.key(ctx, kid)
		if err != nil && !errors.Is(err, ErrInvalid) {
			*kmsErr = err
		}
		return k, err
	}
}

// KeySet holds the public keys of the signing key versions. Each is fetched
// from KMS once per process, since a version's public key never changes, so
// verification makes no KMS calls once a version has been seen.
type KeySet struct {
	kms      KMS
	versions map[string]string // kid → version
	order    []string          // kids, in the order given

	fetch sync.Mutex   // serializes fetches, so concurrent first uses make one call
	mu    sync.RWMutex // guards keys
	keys  map[string]*ecdsa.PublicKey

	cache *verified // nil: every Verify checks the signature
}

// verifiedTokens bounds the cache of verified tokens.
const verifiedTokens = 10000

// NewKeySet returns a KeySet of the given EC_SIGN_P256_SHA256 key versions,
// full cryptoKeyVersions resource names.
func NewKeySet(k KMS, keyVersions ...string) *KeySet {
	ks := &KeySet{kms: k, versions: map[string]string{}, keys: map[string]*ecdsa.PublicKey{}, cache: newVerified(verifiedTokens)}
	for _, v := range keyVersions {
		kid := KeyID(v)
		if _, dup := ks.versions[kid]; dup {
			continue
		}
		ks.versions[kid] = v
		ks.order = append(ks.order, kid)
	}
	return ks
}

// key returns the public key of kid. An unknown kid is ErrInvalid; a KMS
// failure is not, so that a caller can tell an outage from a bad token.
func (ks *KeySet) key(ctx context.Context, kid string) (*ecdsa.PublicKey, error) {
	version, ok := ks.versions[kid]
	if !ok {
		return nil, fmt.Errorf("%w: unknown kid", ErrInvalid)
	}
	ks.mu.RLock()
	k := ks.keys[kid]
	ks.mu.RUnlock()
	if k != nil {
		return k, nil
	}
	ks.fetch.Lock()
	defer ks.fetch.Unlock()
	ks.mu.RLock()
	k = ks.keys[kid]
	ks.mu.RUnlock()
	if k != nil {
		return k, nil // fetched while we waited
	}
	k, err := publicKey(ctx, ks.kms, version)
	if err != nil {
		return nil, err
	}
	ks.mu.Lock()
	ks.keys[kid] = k
	ks.mu.Unlock()
	return k, nil
}

// publicKey fetches and checks the P-256 public key of a key version.
func publicKey(ctx context.Context, kms KMS, version string) (*ecdsa.PublicKey, error) {
	var lastErr error
	for range integrityAttempts {
		resp, err := kms.GetPublicKey(ctx, &kmspb.GetPublicKeyRequest{Name: version})
		if err != nil {
			return nil, fmt.Errorf("token: kms public key of %s: %w", version, err)
		}
		switch {
		case resp.GetPemCrc32C() == nil || resp.GetPemCrc32C().GetValue() != crc32c([]byte(resp.GetPem())):
			lastErr = fmt.Errorf("%w: pem checksum mismatch", ErrIntegrity)
			continue
		case resp.GetName() != version:
			lastErr = fmt.Errorf("%w: answered by another key version", ErrIntegrity)
			continue
		case resp.GetAlgorithm() != kmspb.CryptoKeyVersion_EC_SIGN_P256_SHA256:
			return nil, fmt.Errorf("token: kms public key of %s: algorithm %v, want EC_SIGN_P256_SHA256", version, resp.GetAlgorithm())
		}
		block, _ := pem.Decode([]byte(resp.GetPem()))
		if block == nil || block.Type != "PUBLIC KEY" {
			return nil, fmt.Errorf("token: kms public key of %s: not a PUBLIC KEY PEM block", version)
		}
		pub, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("token: kms public key of %s: %w", version, err)
		}
		ec, ok := pub.(*ecdsa.PublicKey)
		if !ok || ec.Curve != elliptic.P256() {
			return nil, fmt.Errorf("token: kms public key of %s: not P-256", version)
		}
		return ec, nil
	}
	return nil, fmt.Errorf("token: kms public key of %s: %w", version, lastErr)
}

// JWK is one public key of a JWKSet (RFC 7517), an EC P-256 key here.
type JWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
}

// PublicJWK is the JWK of a P-256 public key, for ES256 under kid.
func PublicJWK(kid string, k *ecdsa.PublicKey) (JWK, error) {
	b, err := k.Bytes() // 0x04 || X || Y, each 32 bytes
	if err != nil || len(b) != 65 {
		return JWK{}, fmt.Errorf("token: jwk: not an uncompressed P-256 key: %v", err)
	}
	return JWK{Kty: "EC", Crv: "P-256", X: base64.RawURLEncoding.EncodeToString(b[1:33]),
		Y: base64.RawURLEncoding.EncodeToString(b[33:]), Kid: kid, Alg: "ES256", Use: "sig"}, nil
}

// JWKSet is what JWKS returns.
type JWKSet struct {
	Keys []JWK `json:"keys"`
}

// JWKS returns the public keys as an RFC 7517 key set.
func (ks *KeySet) JWKS(ctx context.Context) ([]byte, error) {
	set := JWKSet{Keys: []JWK{}}
	for _, kid := range ks.order {
		k, err := ks.key(ctx, kid)
		if err != nil {
			return nil, err
		}
		j, err := PublicJWK(kid, k)
		if err != nil {
			return nil, err
		}
		set.Keys = append(set.Keys, j)
	}
	return json.Marshal(set)
}

// Expect is what Verify checks a token against.
type Expect struct {
	Issuer, Audience string           // both required
	Now              func() time.Time // nil: time.Now
	Leeway           time.Duration    // clock skew allowed; zero or less: 30s
}

// Verify checks an access token's signature, kid, issuer, audience and
// times (exp required; iat required, at most MaxLifetime before exp), with
// no KMS call once the key version's public key is cached. Every refusal
// wraps ErrInvalid. An error that does not is the KMS failing on the first
// use of a key version, or an Expect without Issuer or Audience.
func (ks *KeySet) Verify(ctx context.Context, tok string, want Expect) (Claims, error) {
	if want.Issuer == "" || want.Audience == "" {
		// jwt skips the issuer check for an empty issuer: refuse to guess.
		return Claims{}, errors.New("token: verify: Expect needs an Issuer and an Audience")
	}
	now := time.Now
	if want.Now != nil {
		now = want.Now
	}
	if want.Leeway <= 0 {
		want.Leeway = 30 * time.Second
	}
	if len(tok) > maxTokenLen {
		return Claims{}, fmt.Errorf("%w: too long", ErrInvalid)
	}
	// The issuer and audience are part of the cache key, so a hit was
	// checked against the same ones.
	sum := sha256.Sum256([]byte(want.Issuer + "\x00" + want.Audience + "\x00" + tok))
	if c, ok := ks.cache.get(sum); ok {
		// The signature was checked; the times must still hold now.
		if err := checkTimes(c, now(), want.Leeway); err != nil {
			return Claims{}, err
		}
		return c, nil
	}
	var c Claims
	var kmsErr error
	_, err := jwt.ParseWithClaims(tok, &c, ks.keyfunc(ctx, &kmsErr), jwt.WithValidMethods([]string{"ES256"}), jwt.WithIssuer(want.Issuer), jwt.WithAudience(want.Audience),
		jwt.WithExpirationRequired(), jwt.WithIssuedAt(), jwt.WithLeeway(want.Leeway), jwt.WithTimeFunc(now), jwt.WithStrictDecoding())
	switch {
	case kmsErr != nil:
		return Claims{}, kmsErr
	case err != nil:
		return Claims{}, fmt.Errorf("%w: %s", ErrInvalid, reason(err))
	case c.IssuedAt == nil:
		return Claims{}, fmt.Errorf("%w: iat required", ErrInvalid)
	case c.ExpiresAt.Sub(c.IssuedAt.Time) > MaxLifetime:
		return Claims{}, fmt.Errorf("%w: lifetime over %v", ErrInvalid, MaxLifetime)
	}
	ks.cache.put(sum, c, now())
	return c, nil
}

// checkTimes applies exp, nbf and iat to claims whose signature was
// checked before, with the same comparisons as jwt's validator.
func checkTimes(c Claims, now time.Time, leeway time.Duration) error {
	switch {
	case c.ExpiresAt == nil || !now.Add(-leeway).Before(c.ExpiresAt.Time):
		return fmt.Errorf("%w: %s", ErrInvalid, jwt.ErrTokenExpired)
	case c.NotBefore != nil && now.Add(leeway).Before(c.NotBefore.Time):
		return fmt.Errorf("%w: %s", ErrInvalid, jwt.ErrTokenNotValidYet)
	case c.IssuedAt != nil && now.Add(leeway).Before(c.IssuedAt.Time):
		return fmt.Errorf("%w: %s", ErrInvalid, jwt.ErrTokenUsedBeforeIssued)
	}
	return nil
}

// reason names a jwt failure without quoting the token.
func reason(err error) string {
	for _, e := range []error{jwt.ErrTokenExpired, jwt.ErrTokenNotValidYet, jwt.ErrTokenUsedBeforeIssued, jwt.ErrTokenInvalidAudience,
		jwt.ErrTokenInvalidIssuer, jwt.ErrTokenSignatureInvalid, jwt.ErrTokenMalformed, jwt.ErrTokenUnverifiable, jwt.ErrTokenRequiredClaimMissing} {
		if errors.Is(err, e) {
			return e.Error()
		}
	}
	return "rejected"
}

// verified remembers verified tokens until they expire, so a client that
// sends its token with every request costs one signature check per token.
// A nil *verified remembers nothing.
type verified struct {
	mu  sync.Mutex
	max int
	m   map[[32]byte]Claims
}

func newVerified(max int) *verified { return &verified{max: max, m: map[[32]byte]Claims{}} }

func (v *verified) get(k [32]byte) (Claims, bool) {
	if v == nil {
		return Claims{}, false
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	c, ok := v.m[k]
	return c, ok
}

// put remembers c. When full, it forgets the tokens expired by now and
// others down to half, so that filling it costs one scan per max/2
// tokens rather than one per token.
func (v *verified) put(k [32]byte, c Claims, now time.Time) {
	if v == nil {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.m) >= v.max {
		for k2, c2 := range v.m {
			if c2.ExpiresAt.Before(now) || len(v.m) > v.max/2 {
				delete(v.m, k2)
			}
		}
	}
	v.m[k] = c
}

func (v *verified) len() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.m)
}
