package core

import (
	"math"
	"slices"
)

// MedianBy is the median of f over xs.
func MedianBy[S any](xs []S, f func(S) float64) float64 {
	v := make([]float64, len(xs))
	for i, x := range xs {
		v[i] = f(x)
	}
	return Median(v)
}

// Median returns the median of xs (the mean of the middle two for an even
// count), or 0 for none. It does not change xs.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	m := len(s) / 2
	if len(s)%2 == 1 {
		return s[m]
	}
	return (s[m-1] + s[m]) / 2
}

// Percentile returns the p-th percentile (0 < p <= 100) of xs by the
// nearest-rank method, or 0 for none: the smallest value with at least p%
// of the values at or below it. It does not change xs.
func Percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	rank := int(math.Ceil(p*float64(len(s))/100 - 1e-9)) // tolerate p*n/100 landing a hair above an integer
	return s[min(max(rank, 1), len(s))-1]
}

// Ratio is a/b, or 0 when b is not positive: a missing baseline shows as
// no ratio, never as infinity.
func Ratio(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return a / b
}
