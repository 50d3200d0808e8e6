package cluster

import (
	"encoding/binary"
	"fmt"
)

// Command wire format, version 1: version byte, op byte, a uvarint bitmask
// of the fields present, then those fields in bit order. A UserAssign entry
// takes about 20 bytes; zero fields cost nothing.
const commandVersion = 1

const (
	fIP = 1 << iota
	fAll
	fTag
	fVhost
	fHash
	fUsers
	fHosts
	fNow
	fExpire
	fUser
	fText
	fRecords
	fKnown = 1<<iota - 1
)

// MarshalBinary encodes the command for the raft log. Address zones are not kept.
func (c Command) MarshalBinary() ([]byte, error) {
	var mask uint64
	set := func(bit uint64, present bool) {
		if present {
			mask |= bit
		}
	}
	set(fIP, c.IP.IsValid())
	set(fAll, c.All)
	set(fTag, c.Tag != "")
	set(fVhost, c.VhostCount != -1)
	set(fHash, c.Hash != 0)
	set(fUsers, len(c.Users) > 0)
	set(fHosts, len(c.Hosts) > 0)
	set(fNow, c.Now != 0)
	set(fExpire, c.Expire != 0)
	set(fUser, c.User != "")
	set(fText, c.Text != "")
	set(fRecords, len(c.Records) > 0)

	b := make([]byte, 0, 32)
	b = append(b, commandVersion, byte(c.Op))
	b = binary.AppendUvarint(b, mask)
	if mask&fIP != 0 {
		b = appendAddr(b, c.IP)
	}
	if mask&fTag != 0 {
		b = appendString(b, c.Tag)
	}
	if mask&fVhost != 0 {
		b = binary.AppendVarint(b, int64(c.VhostCount))
	}
	if mask&fHash != 0 {
		b = binary.BigEndian.AppendUint32(b, c.Hash)
	}
	if mask&fUsers != 0 {
		b = binary.AppendUvarint(b, uint64(len(c.Users)))
		for _, u := range c.Users {
			b = appendString(b, u.Tag)
			b = binary.BigEndian.AppendUint32(b, u.Hash)
		}
	}
	if mask&fHosts != 0 {
		b = binary.AppendUvarint(b, uint64(len(c.Hosts)))
		for _, h := range c.Hosts {
			b = appendHost(b, h, false)
		}
	}
	if mask&fNow != 0 {
		b = binary.AppendVarint(b, c.Now)
	}
	if mask&fExpire != 0 {
		b = binary.AppendVarint(b, c.Expire)
	}
	if mask&fUser != 0 {
		b = appendString(b, c.User)
	}
	if mask&fText != 0 {
		b = appendString(b, c.Text)
	}
	if mask&fRecords != 0 {
		b = binary.AppendUvarint(b, uint64(len(c.Records)))
		for _, r := range c.Records {
			b = appendString(b, r.Tag)
			b = binary.BigEndian.AppendUint32(b, r.Hash)
			b = appendAddr(b, r.IP)
			b = binary.AppendUvarint(b, r.Gen)
			b = binary.AppendVarint(b, r.TS)
		}
	}
	return b, nil
}

// UnmarshalBinary decodes what MarshalBinary produced.
func (c *Command) UnmarshalBinary(data []byte) error {
	d := decoder{b: data}
	if v := d.byte(); v != commandVersion {
		return fmt.Errorf("cluster: command version %d not supported", v)
	}
	*c = Command{Op: Op(d.byte()), VhostCount: -1}
	mask := d.uvarint()
	if mask&^uint64(fKnown) != 0 {
		d.fail()
	}
	c.All = mask&fAll != 0
	if mask&fIP != 0 {
		c.IP = d.addr()
	}
	if mask&fTag != 0 {
		c.Tag = d.str()
	}
	if mask&fVhost != 0 {
		c.VhostCount = int(d.varint())
	}
	if mask&fHash != 0 {
		c.Hash = d.u32()
	}
	if mask&fUsers != 0 {
		c.Users = make([]UserKey, d.count(5))
		for i := range c.Users {
			c.Users[i] = UserKey{Tag: d.str(), Hash: d.u32()}
		}
	}
	if mask&fHosts != 0 {
		c.Hosts = make([]Host, d.count(6))
		for i := range c.Hosts {
			c.Hosts[i] = d.host(false)
		}
	}
	if mask&fNow != 0 {
		c.Now = d.varint()
	}
	if mask&fExpire != 0 {
		c.Expire = d.varint()
	}
	if mask&fUser != 0 {
		c.User = d.str()
	}
	if mask&fText != 0 {
		c.Text = d.str()
	}
	if mask&fRecords != 0 {
		// tag length, hash, address length, generation, time: 8 bytes at least
		c.Records = make([]Record, d.count(8))
		for i := range c.Records {
			c.Records[i] = Record{Tag: d.str(), Hash: d.u32(), IP: d.addr(), Gen: d.uvarint(), TS: d.varint()}
		}
	}
	return d.finish("command")
}
