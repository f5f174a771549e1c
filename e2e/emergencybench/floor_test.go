package emergencybench

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"loaxa.vn/internal/gcpause"
	"loaxa.vn/node/nodetest"
)

// The floor's helper processes: the test binary run with LOAXA_BENCH_ROLE
// set. Both run until their stdin closes.

// floorBroker runs a mochi broker as nodetest.StartBroker does and prints
// "broker <host:port>".
func floorBroker() int {
	// With the controller's collector percentage: the same broker software
	// run as the controller runs it.
	gcpause.SetDefault(os.Getenv)
	srv, addr, err := nodetest.OpenBroker()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("broker %s\n", addr)
	io.Copy(io.Discard, os.Stdin)
	srv.Close()
	return 0
}

// floorSubscribers connects LOAXA_BENCH_FLOOR_COUNT plain paho subscribers
// to the floor's topic, prints "ready", then "<first payload byte> <Unix
// ns>" for every message a subscriber receives.
func floorSubscribers() int {
	addr := os.Getenv(envFloorBroker)
	from, err1 := strconv.Atoi(os.Getenv(envFloorFrom))
	count, err2 := strconv.Atoi(os.Getenv(envFloorCount))
	if addr == "" || err1 != nil || err2 != nil {
		fmt.Fprintf(os.Stderr, "floor subscribers: want %s, %s and %s\n", envFloorBroker, envFloorFrom, envFloorCount)
		return 2
	}
	lines := make(chan string, 4*count) // to stdout, off the subscribers' callbacks
	go func() {
		w := bufio.NewWriter(os.Stdout)
		for l := range lines {
			w.WriteString(l)
			if len(lines) == 0 {
				w.Flush()
			}
		}
	}()
	clients := make([]paho.Client, 0, count)
	defer func() {
		for _, cl := range clients {
			cl.Disconnect(50)
		}
	}()
	for i := range count {
		opts := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(fmt.Sprintf("floor-%d", from+i)).
			SetCleanSession(true).SetOrderMatters(false)
		cl := paho.NewClient(opts)
		if tok := cl.Connect(); !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
			fmt.Fprintf(os.Stderr, "floor subscriber %d: %v\n", from+i, tok.Error())
			return 1
		}
		clients = append(clients, cl)
		tok := cl.Subscribe(floorTopic, 1, func(_ paho.Client, m paho.Message) {
			at := time.Now()
			lines <- fmt.Sprintf("%d %d\n", m.Payload()[0], at.UnixNano())
		})
		if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
			fmt.Fprintf(os.Stderr, "floor subscribe %d: %v\n", from+i, tok.Error())
			return 1
		}
	}
	lines <- "ready\n"
	io.Copy(io.Discard, os.Stdin) // until the benchmark is done
	return 0
}
