package main

import "time"

// params bounds every load in count and time.
type params struct {
	Mode string

	Users int // distinct user names the loads cycle through

	StormClients int
	StormTime    time.Duration
	StormMax     int // cycles, whatever the time

	LatencyTime time.Duration // the C=1 probe that "latency added over direct" comes from
	LatencyMax  int

	IdleSizes  []int
	IdlePar    int           // logins in flight while building up the idle sessions
	IdleTime   time.Duration // to build them up, per size
	IdleSettle time.Duration

	BulkStreams int
	BulkMsgs    int
	BulkMsgSize int
	BulkRounds  int

	TLSClients int
	TLSTime    time.Duration
	TLSMax     int
}

func quickParams() params {
	return params{
		Mode: "quick", Users: 100,
		StormClients: 4, StormTime: time.Second, StormMax: 2000,
		LatencyTime: 500 * time.Millisecond, LatencyMax: 200,
		IdleSizes: []int{200}, IdlePar: 16, IdleTime: 30 * time.Second, IdleSettle: 200 * time.Millisecond,
		BulkStreams: 1, BulkMsgs: 4, BulkMsgSize: 1 << 20, BulkRounds: 2,
		TLSClients: 4, TLSTime: time.Second, TLSMax: 1000,
	}
}

func fullParams() params {
	return params{
		Mode: "full", Users: 10000,
		StormClients: 32, StormTime: 15 * time.Second, StormMax: 1000000,
		LatencyTime: 5 * time.Second, LatencyMax: 5000,
		IdleSizes: []int{10000, 50000}, IdlePar: 64, IdleTime: 120 * time.Second, IdleSettle: 2 * time.Second,
		BulkStreams: 2, BulkMsgs: 16, BulkMsgSize: 4 << 20, BulkRounds: 8,
		TLSClients: 32, TLSTime: 10 * time.Second, TLSMax: 1000000,
	}
}
