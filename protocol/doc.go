// Package protocol is the wire contract between the loaxa controller and the
// node agents on speaker boards. Both sides import it; nothing else defines
// what travels between them.
//
// # Topics
//
// Every topic is {prefix}/{scope}/{id}/{channel}; the prefix defaults to
// "loa/v1". Ids are lower-case codes (see ValidID), so they never contain
// MQTT wildcards or separators.
//
//	topic                      direction            QoS  retained  body
//	loa/v1/node/{node}/desired controller → node    1    yes       DesiredState (signed)
//	loa/v1/node/{node}/cmd     controller → node    1    no        Command (signed); Live: a call's start or end sent again
//	loa/v1/area/{area}/cmd     controller → nodes   1    no        Command (signed)
//	loa/v1/area/{area}/live    controller → nodes   0    no        live audio frames
//	loa/v1/node/{node}/state   node → controller    1    yes       State; Last Will: State{Status: offline}
//	loa/v1/node/{node}/event   node → controller    1    no        EventBatch
//
// A node subscribes to its own desired and cmd topics and to the cmd topic of
// its area and of every ancestor area, so one publish on a province's topic
// reaches every node in it; the broker does the fan-out. It subscribes to its
// own state topic too: each state it publishes comes back to it, which tells
// it that the broker still delivers to it (node/mqtt); it reports reconnects
// for a missing echo as State.LinkDeaf. Brokers must let it read that topic
// (the controller's ACLs do).
//
// # Envelope
//
// Every message is a JSON Envelope: version, type, sender, key id, audience,
// sequence, issue and expiry times (Unix ms), the body as raw JSON, and an
// Ed25519 signature. Messages larger than MaxMessageSize are refused unread.
//
// Node messages are not signed; receivers read them with Parse, which
// refuses fields the envelope does not define (a newer envelope version is
// told apart as ErrVersion), and Envelope.Decode, which ignores a newer
// node's unknown body fields. ParseBody does both in one pass where that
// gives exactly their result, as the controller's ingest does.
//
// One kind of message also travels in a compact form (compact.go): a live
// call's audio frames, sent several times a second to every node of an
// area, where JSON and base64 would double the stream. The compact form
// carries the same fields, the body in its binary encoding (Live's
// MarshalBinary), and a signature over the same signing bytes, so it is
// checked exactly like a JSON envelope; its first byte, 0xB1, tells it
// from JSON. Only Verifier.Open reads it: node messages are JSON.
//
// # What is signed, and why
//
// Everything the controller sends is signed, because a loudspeaker network is
// a target: a rogue MQTT client, a replayed packet or a compromised broker
// must not be able to sound an alarm. The signature covers every envelope
// field except itself, length-prefixed after a domain-separation tag, and the
// body exactly as sent. A node acts on a controller message only if
//
//   - it is signed by a key the node trusts (ErrUnsigned, ErrUnknownKey,
//     ErrSignature otherwise): those of its credentials, until a desired
//     state lists others (see Key rotation);
//   - its audience ("node/{id}" or "area/{id}") is the topic it arrived on,
//     so a message for one node or area cannot be re-published to another
//     (ErrAudience);
//   - it has not expired and was not issued further in the future than the
//     tolerated clock skew, judged on the node's controller-corrected clock
//     (before its first measurement, never earlier than the latest
//     controller time the node had proof of: docs/security.md "Clock
//     floor") (ErrExpired, ErrNotYetValid); no message may be valid
//     longer than MaxTTL;
//   - it is not a copy of one already accepted: commands go through a
//     ReplayGuard that remembers (key, sequence) until expiry; desired states
//     must carry a higher Version than the one the node runs (ErrReplay).
//     So a signer must never use a sequence number twice with a key, even
//     after a crash on a clock set back: Signer.Reserve stores how far it
//     may count before it counts there.
//     Copies are recognised by these values, never by their bytes: JSON
//     lets one signed envelope be spelled several ways (field names match
//     case-insensitively, base64 ignores spare bits), all of which verify.
//
// Node messages are not signed: the broker authenticates each node with its
// own credentials and lets it publish only on its own state and event topics.
// The controller still checks that the sender in the envelope matches the
// topic.
//
// # Key rotation
//
// A DesiredState may carry Keys: the complete set of controller keys the
// node trusts from then on, which must include the key that signed it. The
// controller rotates its key in two steps without re-enrolling nodes:
// first it announces the next key (desired states list the current and the
// next key, signed by the current one); once every node reports trusting it
// (State.Keys, the key ids the node trusts), the next key signs and the
// desired states list only it, so nodes drop the old key and refuse what it
// signs. Nodes store the learnt set and use it across restarts.
//
// # Transport security
//
// The signatures above do not depend on the transport. With TLS, the
// credentials document's controller_ca holds the PEM certificate(s) the
// node trusts for the controller's HTTPS and the broker's MQTTS (ssl://),
// instead of the system's roots.
//
// # Desired state
//
// The controller compiles each node's announcements into concrete
// occurrences for the coming days and publishes them as one retained,
// versioned DesiredState. The node stores it, fetches the content it names
// ahead of time, and plays each occurrence at its start on its own clock,
// corrected by the offset it measures against the controller (HTTP GET
// /api/v1/time?nonce=, answered with a TimeProof signed for that nonce:
// timeproof.go). A lost link does not stop the schedule.
//
// # Priorities, preemption and repeats
//
// Each Occurrence has a Priority: background < normal < priority <
// emergency. The node plays one occurrence at a time; a due occurrence of a
// higher level preempts the one on air at once, equal levels queue in
// start order. The one cut off reports EventSuspended (not final) and plays
// again from the beginning when it is its turn, if its OnPreempt is resume
// (the default) and its deadline has not passed; otherwise it ends as
// EventPreempted. The deadline is PlayBy (the end of its session) or Start
// plus the late grace, whichever is later; it also bounds a late first
// start. An occurrence that was on air when the agent stopped resumes the
// same way after a restart. Repeat, GapMS, the chimes and Intro make one
// stream on the node: opening chime, Intro, Content Repeat times with GapMS
// of silence between, closing chime. These fields were added later; a zero
// value means
// what an older node does: play Content once at Start, resume policy
// unknown.
//
// Every occurrence ends in exactly one final event: completed, preempted,
// failed (with a Reason) or missed. A playing or suspended occurrence that a
// newer desired state no longer holds (its announcement was cancelled) is
// stopped at once and ends failed with ReasonRemoved. A playing one that a
// newer desired state holds with other audio under its id (a correction:
// another content, chime or repeat) is stopped too, suspended with
// ReasonCorrected, and plays corrected from the beginning if its deadline
// allows.
//
// The started event's At is when the first sample is heard (the corrected
// clock when the sound device took it, plus the device's latency) and its
// LateMS is At minus Start. The node writes it after the audio began, so
// that no store write delays a start.
//
// # Events and acknowledgement
//
// The node writes every event (received, content-ready, started,
// suspended, completed, failed, missed, preempted) to a durable outbox with
// a sequence number that has no gaps, then sends the outbox in order as EventBatch messages until the controller
// acknowledges with a Command{Name: "ack", Epoch, Seq}. The controller stores
// events idempotently by (node, epoch, seq) and accepts them only in order,
// so a resent batch is counted once and a gap is resent, not skipped. Epoch
// changes only when a node's store is recreated. One ack covers every event
// up to its Seq: the controller holds a node's ack for a short delay (2 s by
// default) so that it covers the batches that follow, and the node sends
// ahead of the acks, so the delay holds back no event; a node sends again
// what is not acknowledged after its AckTimeout (30 s). A batch that comes
// after a gap (the batch before it was dropped by a full ingest queue, or
// refused) is answered at once with an ack of what the controller holds
// and Gap, the batch's first sequence; the node then sends again from the
// gap at once, once per gap: copies of batches it sent before going back
// are past the same gap. Before, such a node waited its whole AckTimeout,
// and an alert's receipt lost that way left the alert's report without it
// for 30 s. An event the
// controller cannot take (Event.Validate: no type, an id too long for its
// store's keys, a time JSON cannot hold) is refused alone: its sequence is
// acknowledged with the batch, so that it never holds back the events
// after it.
//
// A node whose store was damaged starts a new epoch, and sends the events
// it could read back from the old outbox as EventBatch{Salvaged: true}
// under the old epoch and numbers; a node whose card takes no writes does
// the same with the card's unsent events. The controller acknowledges
// each such batch at once, with its epoch.
//
// # State, heartbeat and health
//
// A node publishes its retained State on every change (gathered over a
// second) and at least every HeartbeatMS even when nothing changed, so the
// controller can tell a half-open link — no Last Will, no messages — from a
// quiet node (the node waits a random 0.8 to 1 × HeartbeatMS each time, so
// that an area's nodes do not keep publishing together). The State's Board is the hardware snapshot: relay feedback
// and command, the amplifier's fault output, the speaker-line check,
// mains, battery and charger, enclosure temperature, door switch, modem. A
// sensor the board lacks is absent, never zero.
//
// # Settings and commands
//
// NodeConfig carries the settings a technician sets remotely: Volume
// (0–15, 2 dB a step), Muted and AmplifierPolicy. They are part of the
// desired state, so they survive an offline node and a restart. Muted never
// applies to an emergency, which also plays at full volume unless its
// alert gives a Volume.
// Imperative commands expire within minutes: CmdStateNow (publish the
// state now), CmdReboot, and CmdSelfTest (Test: TestSilent or TestAudible,
// TestID the controller's run), whose result the node reports as an
// EventSelfTest event through its outbox, carrying a TestResult.
//
// # Emergency alerts
//
// An emergency is not in any desired state: the controller sends one
// Command{Name: "alert", Alert} per targeted area on the area's cmd topic,
// and the broker fans it out to every node below. The Alert holds one
// Occurrence (priority emergency, or priority for a live call) and the
// content it needs, chimes first. Its Start is a short lead after the
// issue, the same for every node of the area, so that neighbouring
// clusters start together; a node that has it later starts at once and
// its started event's LateMS says how late (and ChimeSkippedMS, added
// later, how much of the opening chime's beginning it left out to play
// the rest in step). Its Expires is the exact
// deadline (Occurrence.Deadline) and the envelope's expiry: a node that
// comes back after it hears nothing stale. Volume (1–15, 15 is full) is
// applied whatever the node's own volume, -2 dB a step below full; Drill
// marks an exercise, and the node copies it into every event about it.
//
// An alert may carry ReportWindowMS (optional; added later): the window
// over which the nodes spread their reports of it, so that those of a
// large area do not reach the broker and controller all at once while the
// alert is still fanning out (the controller sets it from the number of
// nodes it targets, 0 for a commune). A node picks a delay uniformly at
// random within the window, once per alert, and sends each report of the
// alert — its received and content-ready events, its started event, its
// final event, and each retained State it publishes after a change while
// it holds the alert — that delay after the report's own time, or after
// the alert's start for a report made before it (a receipt in time goes
// with the started event, after the fan-out). Events keep their At; they
// wait in the outbox, so a restart or a lost link during the delay loses
// nothing. The events are sent in order, so an event
// written after a held report waits with it, except a report of another
// alert: each alert's reports go at their own time, taking the held ones
// before them along. Playing is never delayed.
// A node applies at most MaxReportWindowMS; a negative window is malformed.
//
// The node plays an alert like any occurrence of its level: it preempts
// what plays (which resumes afterwards by its own policy), the amplifier
// is switched on, and missing content is fetched at once. A copy of an
// alert the node has (the controller resends it on the node's own cmd
// topic to a node that did not report it received) changes nothing.
// Command{Name: "alert-cancel", Occurrence} stops it wherever it is; its
// delivery ends failed with ReasonCancelled, and a copy that arrives later
// does not start it.
//
// Command{Name: "probe", Probe} (added later) goes the way of an alert, on
// an area's cmd topic, so that the controller knows how long that takes
// before the area's first alert: the node notes when it had it and lists
// that in the ProbeReceipts of its next State (the heartbeat's, at the
// latest), and does nothing else. An older node ignores it as an unknown
// command.
//
// The node stores the alerts it holds. An alert's OnPreempt is
// PreemptResume: nothing preempts an emergency, so only the agent stopping
// (a restart, a power cut) cuts one off, and it then plays again from the
// beginning after the restart, until it expires. One that expired while
// the agent was stopped ends failed (it had begun) or missed, with
// ReasonExpired.
//
// # Live calls
//
// A live call (docs/live.md) travels on the live topic of each target
// area as Live messages of one call id ("live-…"): a start (priority and
// title), audio frames numbered from 0 (QoS 0), and an end. The node
// holds the call as an occurrence whose id is the call id, so its events
// (received, started, completed, failed, preempted, missed) name the call,
// and the controller keeps them as the call's per-node deliveries. The
// final event of a play counts the frames played, lost (played as
// silence) and late. An end with Reason LiveCut is an officer cutting the
// call: the node drops what it has buffered, releases the amplifier, and
// reports the play completed with ReasonCut.
// A node that receives a call while a play of the call's rank or above is
// on air (an emergency alert) holds the call back until that is over,
// within the call's start window, and names that play's announcement in the
// received event's HeldBy (added later; optional), so that the officer is
// told which clusters wait behind which alert; its started event's LateMS
// says when it joined.
//
// A node that was offline when a call's start or end went out (a clean
// session keeps nothing) gets it again, signed for the node alone, as a
// Live message (envelope type live) on its own cmd topic when its online
// state reaches the controller: the start while the call is on air (the
// node joins at the frames that come after it), the end once it is over
// (the node closes the call it holds). Both are valid for LiveTTL, so a
// start delivered late, its call over, is refused. An older node refuses
// such a message (counted as rejected); nothing else changes for it.
//
// # Content
//
// Audio travels over HTTP, not MQTT: GET {controller}/api/v1/content/{id}/audio
// with the node's credentials (HTTP Basic, username and secret), Range
// requests for resume. The content id is the hex SHA-256 of the bytes served;
// the node checks it before use. With ?chunks=1 the answer has the chunk
// list in front (ChunkedAudioType; ChunkList: the SHA-256 of each
// ChunkSize of the bytes), whose hash is ContentRef.Chunks; a node that
// plays content as it downloads checks the list against that, then each
// chunk before playing it (GET .../{id}/chunks serves the list alone).
// The format is described in package
// protocol/nodeaudio: IMA ADPCM WAV at 64 kbit/s; content stored before it
// is 16-bit PCM WAV, which nodes still read.
//
// A node fetches the content a desired state names as soon as it has the
// state, soonest-needed first, after a random wait of up to 30 s (shorter
// when the first play is sooner) so that a fleet does not ask at once;
// after a reconnect it tries missing content again the same way. It keeps
// content in a cache of limited size and never evicts what the current
// desired state names. Its State reports ContentMissing, CacheBytes and
// CacheLimit.
//
// Once an occurrence and its content are both on the node, it sends an
// EventContentReady event for that occurrence (once), and the controller
// shows content_ready on the delivery. An occurrence whose content is not on
// the node at its start waits for it within the late grace
// (NodeConfig.LateGraceMS) and plays late if it comes; past the grace it
// fails with ReasonContentMissing. Content still downloading counts as on
// the node once its download is fast enough to stay ahead of the speaker
// (ContentRef.Size and DurationMS give the rate it must keep) and its
// ref carries Chunks: the node plays it as it arrives, chunk by checked
// chunk. A download that then ends without the verified
// content, or brings nothing for the stall timeout, stops the play with
// EventSuspended and ReasonContentMissing; it plays again from the start
// once the content is cached, before its deadline, and otherwise fails
// with ReasonContentMissing. An emergency
// whose opening chime is cached does not wait at all: it starts at its
// Start with the chime, its EventStarted carries ContentPending, and its
// EventContentReady follows once the message can play (the message follows
// the chime then, or, if it came after the chime's end, with the next
// repeat of the area's nodes that had it in time; its final event's
// MessageMS says when it began).
//
// # Agent updates
//
// Command{Name: "update", Update} asks a node to install another release of
// the agent. Update names the Version and, per architecture (GOARCH), the
// archive's SHA-256, size and path on the controller; the command is
// signed, expires and is replay-checked like any command, so the signature
// covers the archive's bytes. The node fetches the archive for its
// architecture over HTTP with its credentials, refuses it unless size and
// SHA-256 match, runs the new binary on trial, and installs it only if it
// connects within a bound; installed, it is on probation until it has run
// healthy for a while, and put back by the previous one if it crashes
// before. It reports EventUpdated (Version; Reason "from <old version>")
// from the new version once it passed its probation, or EventUpdateFailed
// (Version; Reason) from the old one, which carries on. It never restarts
// while something plays or is due within two minutes.
package protocol
