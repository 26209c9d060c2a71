package pool

import "time"

// avg is a moving average of durations (0 until the first sample).
type avg time.Duration

func (a *avg) add(d time.Duration) {
	if *a == 0 {
		*a = avg(d)
		return
	}
	*a = avg((4*time.Duration(*a) + d) / 5)
}

// patience is how long a run that found no ready item of ks should wait
// for one to come back before it makes its own: only while that is
// expected sooner than making one takes. ahead is the number of runs
// already waiting. Items being made or reset for nobody ahead come soon
// enough (up to maxPatience); with Fast, items out with runs come back
// after about a run and a reset each. Short jobs in a batch thus share a
// few warm sandboxes; long ones fan out to new ones.
func (p *Pool) patience(ks *key, ahead int) time.Duration {
	coming := ks.creating + ks.resetting
	if coming > ahead {
		return maxPatience
	}
	create := time.Duration(ks.create)
	if p.cfg.Strategy != Fast || ks.lent == 0 || create == 0 || ks.run == 0 {
		return 0
	}
	rounds := (ahead-coming)/ks.lent + 1
	eta := time.Duration(rounds) * (time.Duration(ks.run) + time.Duration(ks.reset))
	if eta >= create {
		return 0
	}
	return min(2*eta, create)
}

// maxPatience bounds a wait for an item being made or reset.
const maxPatience = 2 * time.Second
