// Package alsatest captures what a process plays on ALSA's default device,
// on machines without a sound card, so tests can check that the node really
// played the audio it was sent.
//
// # How
//
// The first Setup in a process writes an .asoundrc into a fresh HOME (and
// points XDG_CONFIG_HOME at an empty directory beside it, so no user
// configuration interferes):
//
//	pcm.!default { type plug; slave { pcm "loaxa_capture"; format FLOAT_LE; rate 16000; channels 1 } }
//	pcm.loaxa_capture { type file; slave.pcm "null"; file "<dir>/device.fifo"; format "raw" }
//
// The file plugin writes every frame the application writes to a FIFO, then
// hands it to the null PCM, which discards it. The test process holds the
// FIFO open read-write (so opening it never waits for a reader and the reader
// never sees end-of-file between players), shrinks its kernel buffer to
// 4 KiB with F_SETPIPE_SZ and, while a test's Capture runs, reads it at
// real-time pace — 16,000 frames a second, at most 100 ms at once after an
// idle spell — appending what it reads to that test's Capture.Path. A writer
// that gets ahead of real time blocks in write(2) inside the file plugin, as
// it would on a sound card; between tests nobody reads, so it stays blocked
// until the next Setup, which first discards what the FIFO held.
//
// # Pacing: what the null PCM does
//
// The null PCM does not pace: it reports its whole buffer free at all times,
// so writes return at once. Measured on alsa-lib 1.2.8 with a 2 s, 16 kHz
// mono S16_LE WAV:
//
//	$h/.asoundrc: pcm.!default { type file; slave.pcm "null"; file "/tmp/cap.raw"; format "raw" }
//	HOME=$h aplay -q tone.wav
//	→ returns after 0.004 s; /tmp/cap.raw holds exactly the 64,000 data bytes.
//
// A plug (rate and format conversion) in front of it changes nothing: 0.005 s
// for a 2 s 48 kHz stereo file. An oto context writes silence continuously
// between players, so on an unpaced device it spins a core: 167 MB in 0.75 s
// here. The file plugin also accepts file "|command" (popen); writes then
// block only once the 64 KiB pipe buffer is full (1 s of float32 mono at
// 16 kHz), and snd_pcm_close waits for the command to exit (2.15 s for the
// 2 s file with a paced reader command). A FIFO with a 4 KiB buffer and a
// reader that paces itself, as here, paces the writer: through Setup, aplay
// takes 1.97 s for a 2 s file and 10.3 s for a 10 s one (it returns once its
// last frames are in the 4 KiB buffer, and never runs ahead of real time by
// more than that). There is no /dev/snd in these containers, so snd-aloop or
// snd-dummy are not options, and dmix needs a hardware slave, so the setup
// uses neither.
//
// # Format
//
// oto/v2 (v2.4.3, driver_unix.go) always opens the device as FLOAT_LE with
// the context's rate and channel count, whatever the context's source format:
// its mixer converts each int16 sample v to float32(v)/32768 and multiplies by
// the player's volume. The plug in front converts anything else (aplay's
// S16_LE, other rates) to FLOAT_LE 16 kHz mono, and passes oto's 16 kHz mono
// float32 through untouched, so Capture.Path holds exactly the floats the
// application wrote. Samples converts them back to int16 (×32768, rounded):
// what a node played at volume 1 comes back bit for bit.
//
// # A starved writer
//
// The device plays on whether or not the application has frames ready:
// oto's mixer writes exact silence where a player has nothing, so a node
// starved of the CPU on a busy machine comes out late, with silence in the
// middle of what it played, but whole. Await then fails (its failure says
// when the best window holds such silence); AwaitAcrossSilence and
// FindAcrossSilence find the snippet in its pieces and say how many
// samples of silence the device inserted, for a test to allow exactly
// that at its joins.
//
// # One context per process
//
// oto allows one context per process, opens its device once and never
// closes it, and alsa-lib reads its configuration when the first device is
// opened. So the device (the HOME with its .asoundrc, and the FIFO) is made
// once per process and kept until it exits, in a "loaxa-alsatest-*"
// directory under the temporary directory that nothing removes (about
// 20 KB on disk per test binary run): every Setup reuses it, so a test
// run again with -count=N, or a later test in the binary, hears the
// context an earlier one opened. Each Setup has a capture file of its
// own, counted from Setup. Setup must run before the test creates an oto context, one
// Capture at a time; a test binary can open only one context. Keep the
// tests that play through oto in one test (with subtests, using Capture.Len
// as a mark) or share the context between tests, or run the node as a
// subprocess with Capture.Env in its environment; each subprocess may then
// open its own context on the same capture.
package alsatest
