package doveadm

import (
	"math"
	"strconv"
	"strings"
)

func cmdUnavailable(c *cmdCtx) (*table, int) { return nil, exTempFail }

const defaultStatsFields = "count sum min max avg median stddev %95"

// cmdStatsDump is the 2.3 metrics dump; with `type` it answers the seed-era old-stats
// export instead (spec 0).
func cmdStatsDump(c *cmdCtx) (*table, int) {
	if level, ok := c.str("type"); ok {
		if !c.localSocketOK("old-stats") {
			return nil, exTempFail
		}
		filter, _ := c.str("filter")
		return oldStatsDump(c, level, filter)
	}
	if !c.localSocketOK("stats-reader") {
		return nil, exTempFail
	}
	spec, ok := c.str("fields")
	if !ok {
		spec = defaultStatsFields
	}
	fields := strings.FieldsFunc(spec, func(r rune) bool { return r == ' ' || r == ',' })
	for _, f := range fields {
		if _, ok := metricValue(Metric{}, f); !ok {
			c.log.Error("stats dump: unknown field", "field", f)
			return nil, exUsage
		}
	}
	t := newTable(append([]string{"metric_name", "field"}, fields...)...)
	for i := 2; i < len(t.numeric); i++ {
		t.numeric[i] = true
	}
	for _, m := range c.svc.Metrics(c.boolean("reset")) {
		row := []string{m.Name, m.Field}
		for _, f := range fields {
			v, _ := metricValue(m, f)
			row = append(row, v)
		}
		t.rows = append(t.rows, row)
	}
	return t, exOK
}

// metricValue formats one statistic: averages and deviations with two decimals, the rest
// as integers, %NN a percentile.
func metricValue(m Metric, field string) (string, bool) {
	u := func(v uint64) string { return strconv.FormatUint(v, 10) }
	f2 := func(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }
	q := func(x float64) uint64 {
		if m.Quantile == nil {
			return 0
		}
		return m.Quantile(x)
	}
	switch field {
	case "count":
		return u(m.Count), true
	case "sum":
		return u(m.Sum), true
	case "min":
		return u(m.Min), true
	case "max":
		return u(m.Max), true
	case "avg":
		return f2(m.Avg), true
	case "median":
		return u(q(0.5)), true
	case "variance":
		return f2(m.Variance), true
	case "stddev":
		return f2(math.Sqrt(m.Variance)), true
	}
	if p, ok := strings.CutPrefix(field, "%"); ok {
		n, err := strconv.ParseUint(p, 10, 8)
		if err == nil && n > 0 && n <= 100 {
			return u(q(float64(n) / 100)), true
		}
	}
	return "", false
}

func oldStatsDump(c *cmdCtx, level, filter string) (*table, int) {
	st, err := c.svc.OldStatsDump(level, filter)
	if err != nil {
		// 2.3's old-stats server drops the connection and doveadm-server dies; spec 0: 64.
		c.log.Error("oldstats dump failed", "level", level, "err", err)
		return nil, exUsage
	}
	t := newTable(st.Keys...)
	t.rows = st.Rows
	return t, exOK
}

func cmdOldStatsDump(c *cmdCtx) (*table, int) {
	if !c.localSocketOK("old-stats") {
		return nil, exTempFail
	}
	level, ok := c.str("type")
	if !ok {
		c.log.Error("Missing type parameter")
		return nil, exUsage
	}
	filter, _ := c.str("filter")
	return oldStatsDump(c, level, filter)
}

func cmdOldStatsReset(c *cmdCtx) (*table, int) {
	if !c.localSocketOK("old-stats") {
		return nil, exTempFail
	}
	c.svc.OldStatsReset()
	return nil, exOK
}

func cmdServiceStop(c *cmdCtx) (*table, int) {
	names, ok := c.array("service")
	if !ok {
		return nil, exUsage
	}
	if unknown := c.svc.StopService(names); len(unknown) > 0 {
		c.log.Error("Unknown service: " + strings.Join(unknown, ", "))
		return nil, exNotFound
	}
	return nil, exOK
}

// cmdStop answers first and stops after the response is written.
func cmdStop(c *cmdCtx) (*table, int) {
	*c.after = append(*c.after, c.svc.Stop)
	return nil, exOK
}

func cmdReload(c *cmdCtx) (*table, int) {
	if err := c.svc.Reload(); err != nil {
		c.log.Error("reload failed, old configuration stays in force", "err", err)
		return nil, exConfig
	}
	return nil, exOK
}

func cmdProxyList(c *cmdCtx) (*table, int) {
	t := newTable("username", "service", "src-ip", "dest-ip", "dest-port")
	for _, p := range c.svc.ProxySessions() {
		t.add(p.User, p.Service, p.SrcIP, p.DestIP, strconv.Itoa(p.DestPort))
	}
	return t, exOK
}

func cmdProxyKick(c *cmdCtx) (*table, int) {
	users, hasUsers := c.array("user")
	host, hasHost := c.str("host")
	if !hasUsers && !hasHost {
		return nil, exUsage
	}
	field, _ := c.str("passdb-field")
	n := c.svc.ProxyKick(users, field, host)
	t := newTable("count")
	t.add(strconv.Itoa(n))
	return t, exOK
}
