package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"time"

	"loaxa.vn/node/agent"
	"loaxa.vn/node/audio/oto"
)

// errSoundBack ends an agent that runs without its sound device once a new
// process can open it: oto opens the device once per process, so only a
// restarted agent plays on it.
var errSoundBack = errors.New("the sound device can be opened now")

// defaultSoundRecheck is how often, at most, an agent without its sound
// device checks whether it is back (after 1, 2, 4 and 8 s first, for a
// USB sound card that enumerates after the agent started at boot): a
// check costs a process start, tens of milliseconds of CPU on a small
// board.
const defaultSoundRecheck = 15 * time.Second

// soundDevice opens the node's sound device and checks, from a new
// process, whether it can be opened. Tests replace both.
type soundDevice struct {
	open  func() (agent.Output, error)
	check func(ctx context.Context) error
}

// realSound is the oto device, checked by running this program with
// --sound-check.
var realSound = soundDevice{
	open: func() (agent.Output, error) {
		dev, err := oto.Open()
		if err != nil {
			return nil, err
		}
		return dev, nil
	},
	check: checkSoundInChild,
}

// checkSoundInChild runs this program with --sound-check, which opens the
// sound device and exits: nil if it could.
func checkSoundInChild(ctx context.Context) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("cannot tell where this program is: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, "--sound-check")
	cmd.Env = childEnv()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		if msg := strings.TrimSpace(out.String()); msg != "" {
			return fmt.Errorf("%s --sound-check: %w: %s", exe, err, msg)
		}
		return fmt.Errorf("%s --sound-check: %w", exe, err)
	}
	return nil
}

// firstSoundRecheck is the first wait of watchSound: a USB sound card that
// enumerates a moment after the agent started at boot is found at once.
const firstSoundRecheck = time.Second

// watchSound checks whether the sound device can be opened, after one
// second and then twice as long each time up to every, and calls back,
// once, when it can. It returns when ctx ends or after back.
func watchSound(ctx context.Context, check func(context.Context) error, every time.Duration, back func(), log *slog.Logger) {
	wait := min(firstSoundRecheck, every)
	t := time.NewTimer(wait)
	defer t.Stop()
	var last string
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		wait = min(2*wait, every)
		t.Reset(wait)
		err := check(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			log.Warn("node: the sound device can be opened again; restarting the agent to play on it")
			back()
			return
		}
		if msg := err.Error(); msg != last {
			// Once per change: a card that stays away would fill the
			// journal every interval.
			log.Warn("node: still no sound device", "err", err, "check_every", every)
			last = msg
		}
	}
}
