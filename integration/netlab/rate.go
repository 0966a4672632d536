package netlab

import (
	"fmt"
	"strconv"
	"strings"
)

// Rate is a link's bandwidth in bits per second.
type Rate int64

// rateUnits are tc's rate suffixes; like tc, k/m/g are powers of 1000.
var rateUnits = []struct {
	suffix string
	mult   int64
}{
	{"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3}, {"bit", 1},
}

// ParseRate reads a bandwidth as tc writes it: 100mbit, 1gbit, 512kbit,
// 2500000bit (case does not matter).
func ParseRate(s string) (Rate, error) {
	v := strings.ToLower(strings.TrimSpace(s))
	for _, u := range rateUnits {
		n, ok := strings.CutSuffix(v, u.suffix)
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(n, 64)
		if err != nil || f <= 0 {
			break
		}
		return Rate(f * float64(u.mult)), nil
	}
	return 0, fmt.Errorf("rate %q: want a positive number with bit, kbit, mbit or gbit", s)
}

// String writes the rate the way ParseRate reads it.
func (r Rate) String() string {
	for _, u := range rateUnits {
		if int64(r)%u.mult == 0 && int64(r) >= u.mult {
			return strconv.FormatInt(int64(r)/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(int64(r), 10) + "bit"
}

// BytesPerSecond is the rate in bytes.
func (r Rate) BytesPerSecond() float64 { return float64(r) / 8 }
