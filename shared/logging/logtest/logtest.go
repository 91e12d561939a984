// Package logtest captures log output in tests: a buffer that a logger and
// the test's own goroutine may use at the same time.
package logtest

import (
	"bytes"
	"strings"
	"sync"
	"time"
)

// Buffer is a bytes.Buffer safe for concurrent writes and reads.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String is everything written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Rejected counts the JSON log lines that refused something for reason,
// the "rejected" field every refusal carries.
func (s *Buffer) Rejected(reason string) int {
	return strings.Count(s.String(), `"rejected":"`+reason+`"`)
}

// WaitRejected waits up to timeout until n lines refused something for
// reason, and returns how many did: a refusal made after a handler
// returned (a packet's transaction runs after its push) is logged later.
func (s *Buffer) WaitRejected(reason string, n int, timeout time.Duration) int {
	deadline := time.Now().Add(timeout)
	for {
		got := s.Rejected(reason)
		if got >= n || time.Now().After(deadline) {
			return got
		}
		time.Sleep(10 * time.Millisecond)
	}
}
