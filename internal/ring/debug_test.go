package ring

import "os"

func init() {
	if os.Getenv("RING_DEBUG") != "" {
		testOut = os.Stderr
	}
}
