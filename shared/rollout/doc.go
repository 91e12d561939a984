// Package rollout decides, with no I/O and no clock of its own, which devices
// each stage of a staged software rollout reaches, whether the updated
// devices' health lets it go on, and how it advances, pauses, resumes or aborts.
package rollout
