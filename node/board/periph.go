package board

import (
	"fmt"

	"periph.io/x/conn/v3/driver/driverreg"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
	_ "periph.io/x/host/v3/gpioioctl" // the Linux GPIO character device driver
)

// PeriphPins opens GPIO lines through periph.io's driver for the Linux GPIO
// character device (/dev/gpiochip*), by line name. periph.io is the
// maintained Go library for board I/O; its ioctl driver needs no sysfs and
// no cgo.
func PeriphPins() (Pins, error) {
	if _, err := driverreg.Init(); err != nil {
		return nil, fmt.Errorf("gpio: %w", err)
	}
	return func(name string) (Pin, error) {
		p := gpioreg.ByName(name)
		if p == nil {
			return nil, fmt.Errorf("no GPIO line named %q (gpioinfo lists them)", name)
		}
		return periphPin{p}, nil
	}, nil
}

type periphPin struct{ p gpio.PinIO }

func (p periphPin) Out(high bool) error { return p.p.Out(gpio.Level(high)) }
func (p periphPin) In() error           { return p.p.In(gpio.PullNoChange, gpio.NoEdge) }
func (p periphPin) Read() bool          { return bool(p.p.Read()) }
