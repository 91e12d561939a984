// Package anomaly detects, per device and incrementally, the troubles a
// fleet operator must hear about: a sensor gone silent, a handshake flood
// (a cloned key), reading counters that jump or run backwards, a sensor
// that moved, and a battery draining too fast. It is pure: state in, state
// and Changes out, no I/O and no clock.
//
// # State and who writes it
//
// A device's Health lives in its document and is changed only inside the
// transactions that already run for it. Each writes its own part of the
// state, and the entries of Open for the kinds it opens or clears:
//
//	packet transaction     ObservePacket     Traffic     opens COUNTER_*, BATTERY_DRAIN; clears SILENT, COUNTER_*, BATTERY_DRAIN
//	handshake transaction  ObserveHandshake  Handshakes  opens and clears HANDSHAKE_FLOOD
//	reply transaction      ObserveReception  Location    opens and clears LOCATION_CHANGE
//	scheduled sweep        Review            (none)      opens SILENT, clears HANDSHAKE_FLOOD
//
// Each call gets the open troubles and returns Changes; the caller folds
// them in with Apply and, after any call, stores ReviewAt, which the sweep
// queries (reviewAt <= now), so that only devices with something due are
// read. Times passed in are the cloud's clock, not a sensor's.
//
// # Detectors
//
// Every threshold is a named field of Settings, whose comment says why.
//
//   - SILENT (WARNING): no packet by last packet + k × interval (the
//     configured one, else the gap learned between packets that carried
//     the newest readings), never sooner than a floor. The sweep opens it;
//     any packet clears it.
//   - HANDSHAKE_FLOOD (CRITICAL): more handshakes in a sliding window than
//     the sensor protocol lets a genuine sensor start (one per 5 s), with
//     slack. It clears after a whole window at or under half that limit.
//   - COUNTER_JUMP (CRITICAL): within an epoch, a reading above the highest
//     by more than the backlog plus what the learned reading rate explains
//     since then; the new highest is the new baseline. COUNTER_BACKWARDS
//     (CRITICAL): a new reading below the highest by more than a reorder
//     allowance, outside the range the sensor may still owe (after a gap a
//     sensor sends its newest readings first, then the older ones, all as
//     new). A new epoch is a reset, not an anomaly. Both clear after a run
//     of clean packets.
//   - LOCATION_CHANGE (WARNING): after a learning phase, receptions whose
//     regular connectors mostly report an RSSI far outside their learned
//     spread (or, when none of them hears it, a stranger hears it stronger
//     than the weakest of them), several in a row. Displaced receptions
//     are not learned; after a day displaced, the new place is.
//   - BATTERY_DRAIN (WARNING): a drop of at least MinDrop points from a
//     recent reference, faster than the device type's normal drain with
//     slack. A replaced battery, or a normal drain since, clears it.
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
