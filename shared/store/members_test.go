package store

import "testing"

// Grant document ids are stored data: existing grants must still be found.
func TestMemberID(t *testing.T) {
	tests := []struct{ scope, account, want string }{
		{ProjectScope("p1"), "acc1", "cHJvamVjdHMvcDE.acc1"},
		{OrganizationScope("o1"), "acc1", "b3JnYW5pemF0aW9ucy9vMQ.acc1"},
	}
	for _, tt := range tests {
		t.Run(tt.scope, func(t *testing.T) {
			if got := memberID(tt.scope, tt.account); got != tt.want {
				t.Errorf("memberID(%q, %q) = %q, want %q", tt.scope, tt.account, got, tt.want)
			}
		})
	}
}
