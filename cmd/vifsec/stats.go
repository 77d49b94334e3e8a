package main

import (
	"fmt"

	"github.com/vifsec/vifsec/api"
)

// uplinkFlag reads --uplink: true (also given bare) or false.
func uplinkFlag(c *cli, in *invocation) (on bool, code int) {
	switch v := in.get("uplink"); v {
	case "", "false":
		return false, exitOK
	case "true":
		if in.get("vm") != "" {
			fmt.Fprintln(c.stderr, "vifsec: stats: --vm and --uplink exclude each other: give one (--uplink: the counters of no VM)")
			fmt.Fprintln(c.stderr, "usage: vifsec stats [--vm NAME | --uplink]")
			return false, exitUsage
		}
		return true, exitOK
	default:
		fmt.Fprintf(c.stderr, "vifsec: stats: --uplink accepts true or false, not %q\n", v)
		return false, exitUsage
	}
}

// runUplinkStats is `vifsec stats --uplink`: the counters of the uplink
// and the VXLAN overlay (GET /v2/stats/uplink).
func runUplinkStats(c *cli) int {
	u, err := c.c.UplinkStats(c.ctx)
	if err != nil {
		return c.fail(err)
	}
	if c.format == "json" {
		c.json(u)
		return exitOK
	}
	c.uplinkTable(u)
	return exitOK
}

func (c *cli) uplinkTable(u api.UplinkStats) {
	g := u.UDPGSO
	c.table([]string{"Uplink Frames In", "TX Errors", "Drops", "Overlay Drops", "UDP GSO Trains Out", "Segments", "UDP GSO Trains In", "Segments"},
		[][]string{{fmt.Sprint(u.FramesIn), fmt.Sprint(u.TxErrors), dropsString(u.Drops), dropsString(u.OverlayDrops),
			fmt.Sprint(g.TrainsSent), fmt.Sprint(g.SegmentsSent), fmt.Sprint(g.TrainsReceived), fmt.Sprint(g.SegmentsReceived)}})
}

// statsExtra ends the `vifsec stats` table: the VMs' IKE and neighbour
// counters when any is not zero (VMs without IKE have none), and, for
// every VM (no --vm), the uplink's counters.
func (c *cli) statsExtra(st []api.Stats, all bool) int {
	var rows [][]string
	for _, v := range st {
		if v.IKEIn|v.IKEOut|v.NeighborRequests|v.NeighborsLearned != 0 {
			rows = append(rows, []string{v.VM, fmt.Sprint(v.IKEIn), fmt.Sprint(v.IKEOut), fmt.Sprint(v.NeighborRequests), fmt.Sprint(v.NeighborsLearned)})
		}
	}
	if len(rows) > 0 {
		fmt.Fprintln(c.stdout)
		c.table([]string{"VM", "IKE In", "IKE Out", "Neighbor Requests", "Neighbors Learned"}, rows)
	}
	if !all {
		return exitOK
	}
	u, err := c.c.UplinkStats(c.ctx)
	if err != nil {
		return c.fail(err)
	}
	fmt.Fprintln(c.stdout)
	c.uplinkTable(u)
	return exitOK
}
