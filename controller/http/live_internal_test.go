package http

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/coder/websocket"
)

// FuzzLiveMessage reads arbitrary client messages of a live call, binary
// or text: a refusal is an error naming the message's length; an accepted
// binary message appends exactly its samples, in order, after those
// already read; text appends nothing and ends the call exactly when it is
// a JSON object whose field "type", so named, is "end".
func FuzzLiveMessage(f *testing.F) {
	f.Add(true, []byte{})
	f.Add(true, []byte{1, 2, 3, 4})
	f.Add(true, []byte{1, 2, 3})
	f.Add(true, make([]byte, maxLiveMessage))
	f.Add(true, make([]byte, maxLiveMessage+2))
	f.Add(false, []byte(`{"type":"end"}`))
	f.Add(false, []byte(`{"type": "end"}`))
	f.Add(false, []byte(`{"type":"start"}`))
	f.Add(false, []byte(`{"TYPE":"end"}`))
	f.Add(false, []byte(`end`))
	f.Fuzz(func(t *testing.T, isBinary bool, data []byte) {
		typ := websocket.MessageText
		if isBinary {
			typ = websocket.MessageBinary
		}
		before := []int16{7, -7} // samples of earlier messages not flushed yet
		pcm, took, end, err := appendLiveMessage(slices.Clone(before), typ, data)
		if !slices.Equal(pcm[:min(len(pcm), len(before))], before) || len(pcm) < len(before) {
			t.Fatalf("the samples read before became %v", pcm[:min(len(pcm), len(before))])
		}
		got := pcm[len(before):]
		if !isBinary {
			if err != nil || took != 0 || len(got) != 0 {
				t.Fatalf("text %q: err %v, took %d bytes, %d samples", data, err, took, len(got))
			}
			if end && !(json.Valid(data) && strings.HasPrefix(strings.TrimLeft(string(data), " \t\r\n"), "{")) {
				t.Fatalf("text %q, not a JSON object, ended the call", data)
			}
			var obj map[string]any
			isEnd := json.Unmarshal(data, &obj) == nil && obj["type"] == "end"
			if end != isEnd {
				t.Fatalf("text %q: end %v; want it exactly when its field \"type\" (so named) is \"end\"", data, end)
			}
			return
		}
		if end {
			t.Fatalf("binary message of %d bytes ended the call", len(data))
		}
		if len(data) > maxLiveMessage || len(data)%2 != 0 {
			if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("a message of %d bytes", len(data))) {
				t.Fatalf("binary message of %d bytes: err %v, want a refusal naming its length", len(data), err)
			}
			if took != 0 || len(got) != 0 {
				t.Fatalf("refused message took %d bytes, %d samples", took, len(got))
			}
			return
		}
		if err != nil || took != len(data) || len(got) != len(data)/2 {
			t.Fatalf("binary message of %d bytes: err %v, took %d bytes, %d samples", len(data), err, took, len(got))
		}
		for i, v := range got {
			if want := int16(binary.LittleEndian.Uint16(data[2*i:])); v != want {
				t.Fatalf("sample %d is %d, sent %d", i, v, want)
			}
		}
	})
}

// TestLiveMessageEnds: the end is {"type":"end"} however it is spaced;
// other text is ignored, not refused. The field's name is matched exactly,
// as the console and `controller live` send it: encoding/json matched it in
// any case, so {"TYPE":"end"} ended a call, and {"type":"end","Type":"x"}
// did not.
func TestLiveMessageEnds(t *testing.T) {
	for text, want := range map[string]bool{
		`{"type":"end"}`:               true,
		"{ \"type\" : \"end\" }\n":     true,
		`{"type":"end","reason":"ok"}`: true,
		`{"type":"start"}`:             false,
		`{"type":"END"}`:               false,
		`{"TYPE":"end"}`:               false,
		`{"Type":"end"}`:               false,
		`{"type":"end","Type":"x"}`:    true,
		`{"TYPE":"x","type":"end"}`:    true,
		`end`:                          false,
		`["end"]`:                      false,
		``:                             false,
	} {
		_, took, end, err := appendLiveMessage(nil, websocket.MessageText, []byte(text))
		if end != want || took != 0 || err != nil {
			t.Errorf("text %q: end %v, took %d, err %v; want end %v, nothing taken, no error", text, end, took, err, want)
		}
	}
}
