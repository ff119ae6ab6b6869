package model

import (
	"math"
	"strconv"
)

func mathFloat64bits(f float64) uint64     { return math.Float64bits(f) }
func mathFloat64frombits(b uint64) float64 { return math.Float64frombits(b) }
func formatFloat(f float64) string         { return strconv.FormatFloat(f, 'g', -1, 64) }
