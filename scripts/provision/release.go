package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"math"
	"os"
	"time"

	"cloud.google.com/go/firestore"
	"cloud.google.com/go/kms/apiv1/kmspb"
	"cloud.google.com/go/storage"
	"github.com/googleapis/gax-go/v2"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sealedsense/sealedsense/shared/credentials"
	"github.com/sealedsense/sealedsense/shared/custody"
	"github.com/sealedsense/sealedsense/shared/registry"
	"github.com/sealedsense/sealedsense/shared/release"
	"github.com/sealedsense/sealedsense/shared/store"
)

// Default chunk sizes: a sensor's downlink has less room than a
// connector's link, which takes the largest chunk.
const (
	sensorChunk    = 512
	connectorChunk = release.MaxChunk
)

// releaseRequest is what provision release was asked for.
type releaseRequest struct {
	Target           string
	Version, MinFrom uint64
	ChunkSize        int // 0: the target's default
	Image, Bucket    string
}

// targetChunk is a release target's default chunk size; ok is false for
// a target that is neither a sensor type provision sensors makes nor
// connectors.
func targetChunk(target string) (chunk int, ok bool) {
	if target == store.ConnectorType {
		return connectorChunk, true
	}
	if _, ok := productNumber(target); ok {
		return sensorChunk, true
	}
	return 0, false
}

// check refuses a request that cannot make a valid release, before any
// file is read or anything is signed, and returns the manifest fields the
// request fixes.
func (r releaseRequest) check() (release.Manifest, error) {
	chunk, known := targetChunk(r.Target)
	if r.ChunkSize != 0 {
		chunk = r.ChunkSize
	}
	switch {
	case r.Target == "":
		return release.Manifest{}, errors.New("-target is required: a sensor type, such as temperature, or ccon for connectors")
	case !known:
		return release.Manifest{}, fmt.Errorf("unknown target %q: want a sensor type that provision sensors makes, or %s for connectors", r.Target, store.ConnectorType)
	case r.Version == 0 || r.Version > math.MaxUint32:
		return release.Manifest{}, fmt.Errorf("-version %d: want 1..%d", r.Version, uint32(math.MaxUint32))
	case r.MinFrom > r.Version:
		return release.Manifest{}, fmt.Errorf("-min-from %d is above -version %d", r.MinFrom, r.Version)
	case r.MinFrom == r.Version:
		return release.Manifest{}, fmt.Errorf("-min-from %d equals -version: a device running %d has this release already", r.MinFrom, r.Version)
	case chunk < release.MinChunk || chunk > release.MaxChunk:
		return release.Manifest{}, fmt.Errorf("-chunk-size %d: want %d..%d", chunk, release.MinChunk, release.MaxChunk)
	case r.Image == "":
		return release.Manifest{}, errors.New("-image is required")
	case r.Bucket == "":
		return release.Manifest{}, errors.New("-bucket (or SEALEDSENSE_RELEASES_BUCKET) names no bucket")
	}
	return release.Manifest{Target: r.Target, Version: uint32(r.Version), MinFrom: uint32(r.MinFrom), ChunkSize: uint16(chunk)}, nil
}

// readImage reads a release image, refusing an empty one and one larger
// than a device can buffer without reading more than that.
func readImage(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("-image: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, release.MaxImage+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("-image: %w", err)
	case len(b) == 0:
		return nil, fmt.Errorf("-image %s is empty", path)
	case len(b) > release.MaxImage:
		return nil, fmt.Errorf("-image %s is larger than %d bytes, what a device can buffer", path, release.MaxImage)
	}
	return b, nil
}

// newerThanReleased refuses a version that is not newer than the
// target's newest release; existing is newest first.
func newerThanReleased(version uint32, existing []store.Release) error {
	if len(existing) > 0 && version <= existing[0].Version {
		n := existing[0]
		return fmt.Errorf("-version %d is not newer than %s's newest release, version %d (release %s)", version, n.Target, n.Version, n.ID)
	}
	return nil
}

// releaseDeps are what publishing a release works through.
type releaseDeps struct {
	db      *store.DB
	kms     releaseKMS
	gcs     *storage.Client
	signing string // the release-signing CryptoKey
}

// releaseKMS is what a release needs of Cloud KMS; *kms.KeyManagementClient
// is one.
type releaseKMS interface {
	registry.ReleaseKMS
	AsymmetricSign(ctx context.Context, req *kmspb.AsymmetricSignRequest, opts ...gax.CallOption) (*kmspb.AsymmetricSignResponse, error)
}

// openRelease makes what release works through; it needs no other key.
func openRelease(ctx context.Context, getenv func(string) string) (releaseDeps, func(), error) {
	project, key := getenv("GOOGLE_CLOUD_PROJECT"), getenv("SEALEDSENSE_RELEASE_SIGNING_KEY")
	if project == "" || key == "" {
		return releaseDeps{}, nil, errors.New("set GOOGLE_CLOUD_PROJECT and SEALEDSENSE_RELEASE_SIGNING_KEY")
	}
	fs, err := firestore.NewClient(ctx, project)
	if err != nil {
		return releaseDeps{}, nil, fmt.Errorf("firestore: %w", err)
	}
	kc, err := custody.NewKMSClient(ctx)
	if err != nil {
		fs.Close()
		return releaseDeps{}, nil, err
	}
	gcs, err := storage.NewClient(ctx)
	if err != nil {
		fs.Close()
		kc.Close()
		return releaseDeps{}, nil, fmt.Errorf("storage: %w", err)
	}
	closeAll := func() { fs.Close(); kc.Close(); gcs.Close() }
	return releaseDeps{db: store.New(fs), kms: kc, gcs: gcs, signing: key}, closeAll, nil
}

// releaseCmd signs a software release with the newest enabled version of
// release-signing, uploads its image and records it. Nothing is signed
// or uploaded for a request it refuses.
func releaseCmd(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer, log *slog.Logger) error {
	fl := flag.NewFlagSet("release", flag.ContinueOnError)
	var r releaseRequest
	fl.StringVar(&r.Target, "target", "", "device type the release is for (a sensor type, or ccon for connectors)")
	fl.Uint64Var(&r.Version, "version", 0, "the version the release installs")
	fl.Uint64Var(&r.MinFrom, "min-from", 0, "the oldest running version that may install it")
	fl.StringVar(&r.Image, "image", "", "the image file")
	fl.IntVar(&r.ChunkSize, "chunk-size", 0, fmt.Sprintf("bytes per chunk, %d..%d (default %d for sensors, %d for ccon)", release.MinChunk, release.MaxChunk, sensorChunk, connectorChunk))
	fl.StringVar(&r.Bucket, "bucket", getenv("SEALEDSENSE_RELEASES_BUCKET"), "the bucket release images go to")
	if err := fl.Parse(args); err != nil {
		return err
	}
	m, err := r.check()
	if err != nil {
		return err
	}
	image, err := readImage(r.Image)
	if err != nil {
		return err
	}
	d, closeAll, err := openRelease(ctx, getenv)
	if err != nil {
		return err
	}
	defer closeAll()
	rel, err := publish(ctx, d, m, image, r.Bucket)
	if err != nil {
		return err
	}
	log.Info("release published", "releaseId", rel.ID, "target", rel.Target, "version", rel.Version, "keyVersion", rel.KeyVersion, "object", rel.Object)
	return printRelease(stdout, rel)
}

// publish signs the release, uploads its image and stores it. The image
// goes up first, so no stored release ever names a missing image.
func publish(ctx context.Context, d releaseDeps, m release.Manifest, image []byte, bucket string) (store.Release, error) {
	existing, err := d.db.ReleasesOf(ctx, m.Target)
	if err != nil {
		return store.Release{}, err
	}
	if err := newerThanReleased(m.Version, existing); err != nil {
		return store.Release{}, err
	}
	m, signed, err := sign(ctx, d, m, image)
	if err != nil {
		return store.Release{}, err
	}
	id := hex.EncodeToString(m.ReleaseID[:])
	rel := store.Release{ID: id, Target: m.Target, Version: m.Version, MinFrom: m.MinFrom, Size: m.Size, ChunkSize: m.ChunkSize,
		ImageSHA256: m.ImageSHA256[:], KeyVersion: m.KeyVersion, Signed: signed,
		Bucket: bucket, Object: fmt.Sprintf("releases/%s/%d-%s.img", m.Target, m.Version, id), Created: time.Now().UTC()}
	if err := upload(ctx, d.gcs, rel.Bucket, rel.Object, image); err != nil {
		return store.Release{}, fmt.Errorf("upload gs://%s/%s: %w", rel.Bucket, rel.Object, err)
	}
	if err := d.db.CreateRelease(ctx, rel); err != nil {
		return store.Release{}, fmt.Errorf("image uploaded to gs://%s/%s, but the release was not stored (nothing refers to the object): %w", rel.Bucket, rel.Object, err)
	}
	return rel, nil
}

// sign completes m for image under a fresh release id, seals it with the
// newest enabled version of the release-signing key, and opens the result
// with that version's public key, as a device will, before anything is
// published.
func sign(ctx context.Context, d releaseDeps, m release.Manifest, image []byte) (release.Manifest, []byte, error) {
	keys, err := registry.ReleaseKeys(ctx, d.kms, d.signing)
	if err != nil {
		return m, nil, err
	}
	newest := keys[len(keys)-1]
	trusted, err := credentials.TrustedReleaseKeys([]credentials.ReleaseKey{newest})
	if err != nil {
		return m, nil, err
	}
	m.Size, m.ImageSHA256, m.KeyVersion = uint32(len(image)), sha256.Sum256(image), newest.Version
	if _, err := rand.Read(m.ReleaseID[:]); err != nil {
		return m, nil, err
	}
	version := fmt.Sprintf("%s/cryptoKeyVersions/%d", d.signing, newest.Version)
	signed, err := release.Seal(m, kmsSign(ctx, d.kms, version))
	if err != nil {
		return m, nil, err
	}
	if _, err := release.Open(signed, trusted); err != nil {
		return m, nil, fmt.Errorf("the manifest KMS signed does not open under %s's public key: %w", version, err)
	}
	return m, signed, nil
}

func crc32c(b []byte) int64 { return int64(crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli))) }

// kmsSign signs a digest with one AsymmetricSign call, checking the
// integrity fields both ways and the version that answered.
func kmsSign(ctx context.Context, kms releaseKMS, version string) func([32]byte) ([]byte, error) {
	return func(digest [32]byte) ([]byte, error) {
		resp, err := kms.AsymmetricSign(ctx, &kmspb.AsymmetricSignRequest{
			Name:         version,
			Digest:       &kmspb.Digest{Digest: &kmspb.Digest_Sha256{Sha256: digest[:]}},
			DigestCrc32C: wrapperspb.Int64(crc32c(digest[:])),
		})
		switch {
		case err != nil:
			return nil, err
		case !resp.GetVerifiedDigestCrc32C():
			return nil, errors.New("KMS did not verify the digest's checksum")
		case resp.GetSignatureCrc32C() == nil || resp.GetSignatureCrc32C().GetValue() != crc32c(resp.GetSignature()):
			return nil, errors.New("signature checksum mismatch")
		case resp.GetName() != version:
			return nil, fmt.Errorf("answered by %q", resp.GetName())
		}
		return resp.GetSignature(), nil
	}
}

// upload stores the image as a new object: an image is never replaced,
// and the CRC32C lets Cloud Storage refuse a copy damaged on the way.
func upload(ctx context.Context, c *storage.Client, bucket, object string, image []byte) error {
	w := c.Bucket(bucket).Object(object).If(storage.Conditions{DoesNotExist: true}).NewWriter(ctx)
	w.ContentType = "application/octet-stream"
	w.CRC32C = uint32(crc32c(image))
	w.SendCRC32C = true
	if _, err := w.Write(image); err != nil {
		_ = w.Close()
		return err
	}
	return w.Close()
}

// releaseOutput is what release prints: the release id and the facts of
// its manifest.
type releaseOutput struct {
	ReleaseID   string `json:"releaseId"`
	Target      string `json:"target"`
	Version     uint32 `json:"version"`
	MinFrom     uint32 `json:"minFrom"`
	Size        uint32 `json:"size"`
	ChunkSize   uint16 `json:"chunkSize"`
	Chunks      uint32 `json:"chunks"`
	ImageSHA256 string `json:"imageSha256"`
	KeyVersion  uint32 `json:"keyVersion"`
	Image       string `json:"image"`
}

func printRelease(w io.Writer, r store.Release) error {
	m := release.Manifest{Size: r.Size, ChunkSize: r.ChunkSize}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(releaseOutput{ReleaseID: r.ID, Target: r.Target, Version: r.Version, MinFrom: r.MinFrom, Size: r.Size,
		ChunkSize: r.ChunkSize, Chunks: m.Chunks(), ImageSHA256: hex.EncodeToString(r.ImageSHA256), KeyVersion: r.KeyVersion,
		Image: "gs://" + r.Bucket + "/" + r.Object})
}
