package kms

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"cloud.google.com/go/kms/apiv1/kmspb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Server implements the KMS service.
type Server struct {
	kmspb.UnimplementedKeyManagementServiceServer

	mu        sync.Mutex
	st        *state
	stateFile string
	now       func() time.Time
	// calls counts cryptographic operations, which are what KMS bills and
	// what the pipeline promises to keep off the per-packet path.
	calls atomic.Uint64
}

// CryptoCalls is the number of Encrypt, Decrypt, AsymmetricSign and
// GetPublicKey calls served.
func (s *Server) CryptoCalls() uint64 { return s.calls.Load() }

// Option configures a Server.
type Option func(*Server)

// WithStateFile keeps all keys in path (mode 0600), loaded at start and
// rewritten after every change.
func WithStateFile(path string) Option { return func(s *Server) { s.stateFile = path } }

// NewServer returns a Server; it fails only if a state file cannot be read.
func NewServer(opts ...Option) (*Server, error) {
	s := &Server{now: time.Now}
	for _, o := range opts {
		o(s)
	}
	st, err := load(s.stateFile)
	if err != nil {
		return nil, err
	}
	s.st = st
	return s, nil
}

// Register adds the service to a gRPC server.
func (s *Server) Register(g *grpc.Server) { kmspb.RegisterKeyManagementServiceServer(g, s) }

func (s *Server) persist() error {
	if err := s.st.save(s.stateFile); err != nil {
		return status.Errorf(codes.Internal, "persist state: %v", err)
	}
	return nil
}

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// CreateKeyRing creates a key ring.
func (s *Server) CreateKeyRing(_ context.Context, req *kmspb.CreateKeyRingRequest) (*kmspb.KeyRing, error) {
	if !locationOK(req.GetParent()) {
		return nil, status.Errorf(codes.InvalidArgument, "invalid parent %q", req.GetParent())
	}
	if err := checkID("key ring", req.GetKeyRingId()); err != nil {
		return nil, err
	}
	name := req.GetParent() + "/keyRings/" + req.GetKeyRingId()
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.st.Rings[name]; ok {
		return nil, status.Errorf(codes.AlreadyExists, "KeyRing %s already exists", name)
	}
	s.st.Rings[name] = s.now().UTC()
	if err := s.persist(); err != nil {
		return nil, err
	}
	return &kmspb.KeyRing{Name: name, CreateTime: ts(s.st.Rings[name])}, nil
}

// GetKeyRing returns a key ring.
func (s *Server) GetKeyRing(_ context.Context, req *kmspb.GetKeyRingRequest) (*kmspb.KeyRing, error) {
	if !ringOK(req.GetName()) {
		return nil, status.Errorf(codes.InvalidArgument, "invalid key ring name %q", req.GetName())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.st.Rings[req.GetName()]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "KeyRing %s not found", req.GetName())
	}
	return &kmspb.KeyRing{Name: req.GetName(), CreateTime: ts(t)}, nil
}

// ListKeyRings lists the key rings of a location, in name order.
func (s *Server) ListKeyRings(_ context.Context, req *kmspb.ListKeyRingsRequest) (*kmspb.ListKeyRingsResponse, error) {
	if !locationOK(req.GetParent()) {
		return nil, status.Errorf(codes.InvalidArgument, "invalid parent %q", req.GetParent())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	resp := &kmspb.ListKeyRingsResponse{}
	for _, name := range sortedKeys(s.st.Rings) {
		if strings.HasPrefix(name, req.GetParent()+"/keyRings/") {
			resp.KeyRings = append(resp.KeyRings, &kmspb.KeyRing{Name: name, CreateTime: ts(s.st.Rings[name])})
		}
	}
	resp.TotalSize = int32(len(resp.KeyRings))
	return resp, nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// CreateCryptoKey creates a symmetric or EC P-256 signing key.
func (s *Server) CreateCryptoKey(_ context.Context, req *kmspb.CreateCryptoKeyRequest) (*kmspb.CryptoKey, error) {
	if !ringOK(req.GetParent()) {
		return nil, status.Errorf(codes.InvalidArgument, "invalid parent %q", req.GetParent())
	}
	if err := checkID("crypto key", req.GetCryptoKeyId()); err != nil {
		return nil, err
	}
	ck := req.GetCryptoKey()
	alg := ck.GetVersionTemplate().GetAlgorithm()
	switch ck.GetPurpose() {
	case kmspb.CryptoKey_ENCRYPT_DECRYPT:
		if alg == kmspb.CryptoKeyVersion_CRYPTO_KEY_VERSION_ALGORITHM_UNSPECIFIED {
			alg = kmspb.CryptoKeyVersion_GOOGLE_SYMMETRIC_ENCRYPTION
		}
		if alg != kmspb.CryptoKeyVersion_GOOGLE_SYMMETRIC_ENCRYPTION {
			return nil, status.Errorf(codes.InvalidArgument, "algorithm %v is not valid for ENCRYPT_DECRYPT", alg)
		}
	case kmspb.CryptoKey_ASYMMETRIC_SIGN:
		if alg != kmspb.CryptoKeyVersion_EC_SIGN_P256_SHA256 {
			return nil, status.Errorf(codes.InvalidArgument, "the emulator supports ASYMMETRIC_SIGN with EC_SIGN_P256_SHA256 only, not %v", alg)
		}
		if ck.GetRotationPeriod() != nil {
			return nil, status.Errorf(codes.InvalidArgument, "asymmetric keys cannot have a rotation period")
		}
	default:
		return nil, status.Errorf(codes.InvalidArgument, "unsupported purpose %v", ck.GetPurpose())
	}
	name := req.GetParent() + "/cryptoKeys/" + req.GetCryptoKeyId()
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.st.Rings[req.GetParent()]; !ok {
		return nil, status.Errorf(codes.NotFound, "KeyRing %s not found", req.GetParent())
	}
	if _, ok := s.st.Keys[name]; ok {
		return nil, status.Errorf(codes.AlreadyExists, "CryptoKey %s already exists", name)
	}
	k := &cryptoKey{
		Purpose: ck.GetPurpose(), Algorithm: alg, CreateTime: s.now().UTC(), Labels: ck.GetLabels(),
		RotationPeriod: ck.GetRotationPeriod().AsDuration(),
	}
	if ck.GetNextRotationTime() != nil {
		k.NextRotationTime = ck.GetNextRotationTime().AsTime()
	}
	if !req.GetSkipInitialVersionCreation() {
		if err := k.addVersion(s.now()); err != nil {
			return nil, err
		}
		if k.Purpose == kmspb.CryptoKey_ENCRYPT_DECRYPT {
			k.Primary = 1
		}
	}
	s.st.Keys[name] = k
	if err := s.persist(); err != nil {
		return nil, err
	}
	return k.proto(name), nil
}

func (k *cryptoKey) addVersion(now time.Time) error {
	var material []byte
	if k.Purpose == kmspb.CryptoKey_ENCRYPT_DECRYPT {
		material = make([]byte, 32)
		if _, err := rand.Read(material); err != nil {
			return status.Errorf(codes.Internal, "key generation failed")
		}
	} else {
		priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return status.Errorf(codes.Internal, "key generation failed")
		}
		if material, err = x509.MarshalPKCS8PrivateKey(priv); err != nil {
			return status.Errorf(codes.Internal, "key generation failed")
		}
	}
	k.Versions = append(k.Versions, &keyVersion{State: kmspb.CryptoKeyVersion_ENABLED, Material: material, CreateTime: now.UTC()})
	return nil
}

func (k *cryptoKey) proto(name string) *kmspb.CryptoKey {
	p := &kmspb.CryptoKey{
		Name: name, Purpose: k.Purpose, CreateTime: ts(k.CreateTime), Labels: k.Labels,
		VersionTemplate:  &kmspb.CryptoKeyVersionTemplate{Algorithm: k.Algorithm, ProtectionLevel: kmspb.ProtectionLevel_SOFTWARE},
		NextRotationTime: ts(k.NextRotationTime),
	}
	if k.RotationPeriod > 0 {
		p.RotationSchedule = &kmspb.CryptoKey_RotationPeriod{RotationPeriod: durationpb.New(k.RotationPeriod)}
	}
	if k.Primary > 0 {
		p.Primary = k.versionProto(name, k.Primary)
	}
	return p
}

func (k *cryptoKey) versionProto(key string, n int) *kmspb.CryptoKeyVersion {
	v := k.Versions[n-1]
	return &kmspb.CryptoKeyVersion{
		Name: versionName(key, n), State: v.State, Algorithm: k.Algorithm,
		ProtectionLevel: kmspb.ProtectionLevel_SOFTWARE, CreateTime: ts(v.CreateTime),
	}
}

// key looks a crypto key up; the caller holds s.mu.
func (s *Server) key(name string) (*cryptoKey, error) {
	if !keyOK(name) {
		return nil, status.Errorf(codes.InvalidArgument, "invalid crypto key name %q", name)
	}
	k, ok := s.st.Keys[name]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "CryptoKey %s not found", name)
	}
	return k, nil
}

// version looks a version up by its full name; the caller holds s.mu.
func (s *Server) version(name string) (string, *cryptoKey, int, error) {
	keyName, n, ok := splitVersion(name)
	if !ok {
		return "", nil, 0, status.Errorf(codes.InvalidArgument, "invalid crypto key version name %q", name)
	}
	k, err := s.key(keyName)
	if err != nil {
		return "", nil, 0, err
	}
	if n > len(k.Versions) {
		return "", nil, 0, status.Errorf(codes.NotFound, "CryptoKeyVersion %s not found", name)
	}
	return keyName, k, n, nil
}

// GetCryptoKey returns a crypto key with its primary version.
func (s *Server) GetCryptoKey(_ context.Context, req *kmspb.GetCryptoKeyRequest) (*kmspb.CryptoKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, err := s.key(req.GetName())
	if err != nil {
		return nil, err
	}
	return k.proto(req.GetName()), nil
}

// ListCryptoKeys lists a key ring's keys in name order.
func (s *Server) ListCryptoKeys(_ context.Context, req *kmspb.ListCryptoKeysRequest) (*kmspb.ListCryptoKeysResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.st.Rings[req.GetParent()]; !ok {
		return nil, status.Errorf(codes.NotFound, "KeyRing %s not found", req.GetParent())
	}
	resp := &kmspb.ListCryptoKeysResponse{}
	for _, name := range sortedKeys(s.st.Keys) {
		if strings.HasPrefix(name, req.GetParent()+"/cryptoKeys/") {
			resp.CryptoKeys = append(resp.CryptoKeys, s.st.Keys[name].proto(name))
		}
	}
	resp.TotalSize = int32(len(resp.CryptoKeys))
	return resp, nil
}

// CreateCryptoKeyVersion adds a version; it does not become primary.
func (s *Server) CreateCryptoKeyVersion(_ context.Context, req *kmspb.CreateCryptoKeyVersionRequest) (*kmspb.CryptoKeyVersion, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, err := s.key(req.GetParent())
	if err != nil {
		return nil, err
	}
	if err := k.addVersion(s.now()); err != nil {
		return nil, err
	}
	if err := s.persist(); err != nil {
		return nil, err
	}
	return k.versionProto(req.GetParent(), len(k.Versions)), nil
}

// GetCryptoKeyVersion returns one version.
func (s *Server) GetCryptoKeyVersion(_ context.Context, req *kmspb.GetCryptoKeyVersionRequest) (*kmspb.CryptoKeyVersion, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	keyName, k, n, err := s.version(req.GetName())
	if err != nil {
		return nil, err
	}
	return k.versionProto(keyName, n), nil
}

// ListCryptoKeyVersions lists a key's versions in order.
func (s *Server) ListCryptoKeyVersions(_ context.Context, req *kmspb.ListCryptoKeyVersionsRequest) (*kmspb.ListCryptoKeyVersionsResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, err := s.key(req.GetParent())
	if err != nil {
		return nil, err
	}
	resp := &kmspb.ListCryptoKeyVersionsResponse{TotalSize: int32(len(k.Versions))}
	for n := range k.Versions {
		resp.CryptoKeyVersions = append(resp.CryptoKeyVersions, k.versionProto(req.GetParent(), n+1))
	}
	return resp, nil
}

// UpdateCryptoKeyPrimaryVersion rotates a symmetric key.
func (s *Server) UpdateCryptoKeyPrimaryVersion(_ context.Context, req *kmspb.UpdateCryptoKeyPrimaryVersionRequest) (*kmspb.CryptoKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, k, n, err := s.version(req.GetName() + "/cryptoKeyVersions/" + req.GetCryptoKeyVersionId())
	if err != nil {
		return nil, err
	}
	if k.Purpose != kmspb.CryptoKey_ENCRYPT_DECRYPT {
		return nil, status.Errorf(codes.FailedPrecondition, "only ENCRYPT_DECRYPT keys have a primary version")
	}
	if k.Versions[n-1].State != kmspb.CryptoKeyVersion_ENABLED {
		return nil, status.Errorf(codes.FailedPrecondition, "version %d is not enabled", n)
	}
	k.Primary = n
	if err := s.persist(); err != nil {
		return nil, err
	}
	return k.proto(req.GetName()), nil
}

// UpdateCryptoKeyVersion changes a version's state between ENABLED and
// DISABLED.
func (s *Server) UpdateCryptoKeyVersion(_ context.Context, req *kmspb.UpdateCryptoKeyVersionRequest) (*kmspb.CryptoKeyVersion, error) {
	paths := req.GetUpdateMask().GetPaths()
	if len(paths) != 1 || paths[0] != "state" {
		return nil, status.Errorf(codes.InvalidArgument, "update_mask must be exactly [state]")
	}
	want := req.GetCryptoKeyVersion().GetState()
	if want != kmspb.CryptoKeyVersion_ENABLED && want != kmspb.CryptoKeyVersion_DISABLED {
		return nil, status.Errorf(codes.InvalidArgument, "state can be set to ENABLED or DISABLED only")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	keyName, k, n, err := s.version(req.GetCryptoKeyVersion().GetName())
	if err != nil {
		return nil, err
	}
	k.Versions[n-1].State = want
	if err := s.persist(); err != nil {
		return nil, err
	}
	return k.versionProto(keyName, n), nil
}
