package keybackup

import (
	"os"
	"strings"
	"testing"

	"github.com/sealedsense/sealedsense/emulators/platform/platformtest"
)

func TestMain(m *testing.M) {
	if fuzzing() {
		// The fuzz targets are pure; starting the emulators in every fuzz
		// worker would only swamp the machine.
		os.Exit(m.Run())
	}
	platformtest.Main(m)
}

func fuzzing() bool {
	for _, a := range os.Args[1:] {
		if strings.HasPrefix(a, "-test.fuzzworker") || strings.HasPrefix(a, "-test.fuzz=") && a != "-test.fuzz=" {
			return true
		}
	}
	return false
}
