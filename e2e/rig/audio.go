package rig

import (
	"encoding/binary"
	"io"
	"net/http"

	"loaxa.vn/protocol/nodeaudio"
)

// NodeAudio downloads content id as nodes receive it (the node format)
// and returns its decoded 16-bit samples: what a node should play.
func (c *Controller) NodeAudio(id string) []int16 {
	c.t.Helper()
	req, err := http.NewRequest("GET", c.URL+"/api/v1/content/"+id+"/audio", nil)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		c.t.Fatalf("GET content %s audio: status %d", id, resp.StatusCode)
	}
	r, err := nodeaudio.NewReader(resp.Body)
	if err != nil {
		c.t.Fatalf("content %s audio: %v", id, err)
	}
	raw, err := io.ReadAll(r)
	if err != nil {
		c.t.Fatalf("content %s audio: %v", id, err)
	}
	s := make([]int16, len(raw)/2)
	for i := range s {
		s[i] = int16(binary.LittleEndian.Uint16(raw[2*i:]))
	}
	return s
}
