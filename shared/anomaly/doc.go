// Package anomaly detects, per device and incrementally, the troubles a
// fleet operator must hear about: a sensor gone silent, a handshake flood
// (a cloned key), reading counters that jump or run backwards, a sensor
// that moved, and a battery draining too fast. It is pure: state in, state
// and Changes out, no I/O and no clock.
//
// # State and who writes it
//
// A device's Health lives in its document and is changed only inside the
// transactions that already run for it, each writing its own part, so that
// they never contend for a field:
//
//	packet transaction     ObservePacket     Traffic     opens COUNTER_*, BATTERY_DRAIN; clears SILENT, COUNTER_*, BATTERY_DRAIN
//	handshake transaction  ObserveHandshake  Handshakes  opens and clears HANDSHAKE_FLOOD
//	reply transaction      ObserveReception  Location    opens and clears LOCATION_CHANGE
//	scheduled sweep        Review            (none)      opens SILENT, clears HANDSHAKE_FLOOD
//
// Each call gets the open troubles and returns Changes; the caller folds
// them in with Apply and stores ReviewAt, which the sweep queries
// (reviewAt <= now), so that only devices with something due are read.
//
// # Never a flood of alerts
//
// A kind already open never opens again, and a kind not open never
// clears: one Change when it starts, one when it clears. Every detector
// waits for a run of evidence before it opens (D displaced receptions, a
// window's count past the limit) and for a run of the opposite before it
// clears (N clean packets, a quiet window), so a noisy device does not
// flap.
//
// # Robustness
//
// Inputs come from radios, connectors and stored documents. NaN or
// infinite RSSI, times outside 2000..9000, times going backwards, huge or
// wrapping sequence numbers and nonsense stored state are ignored or
// reset, never stored: no detector panics and none stores a NaN.
package anomaly
