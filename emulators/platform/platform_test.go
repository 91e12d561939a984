package platform_test

import (
	"context"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/emulators/platform"
)

// TestCloseLeavesNothingBehind starts a whole platform and stops it: no
// emulator process may survive (gcloud starts Java children) and every port
// must be free again.
func TestCloseLeavesNothingBehind(t *testing.T) {
	p, err := platform.Start(context.Background(), platform.Config{
		Firestore: "auto", PubSub: "auto", KMS: "auto", Storage: "auto", DataDir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	addrs := []string{p.FirestoreAddr, p.PubSubAddr, p.KMSAddr, p.StorageAddr}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for _, a := range addrs {
		for {
			l, err := net.Listen("tcp", a)
			if err == nil {
				l.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s is still taken after Close: %v", a, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	out, _ := exec.Command("ps", "-eo", "args").Output()
	for _, a := range addrs[:2] {
		_, port, _ := net.SplitHostPort(a)
		for line := range strings.Lines(string(out)) {
			if strings.Contains(line, "emulator") && strings.Contains(line, "--port="+port) {
				t.Fatalf("an emulator survived Close: %s", line)
			}
		}
	}
}
