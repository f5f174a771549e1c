package alsatest

import "go.uber.org/goleak"

// OtoLoops are oto's device and mixer goroutines: oto cannot close a
// context, so they live as long as the process that played through it. A
// test binary that plays through oto passes them to goleak:
//
//	func TestMain(m *testing.M) { goleak.VerifyTestMain(m, alsatest.OtoLoops...) }
var OtoLoops = []goleak.Option{
	goleak.IgnoreAnyFunction("github.com/hajimehoshi/oto/v2.(*context).readAndWrite"),
	goleak.IgnoreAnyFunction("github.com/hajimehoshi/oto/v2/internal/mux.(*Mux).loop"),
}
