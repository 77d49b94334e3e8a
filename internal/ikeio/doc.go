// Package ikeio carries vifsecd's IKE datagrams between the engine that
// internal/ikectl runs and the network (Glue):
//
//   - for policies with --vm, through the data path: it punts IKE
//     addressed to the VM (datapath.Engine.SetIKEHandler) and sends on
//     the VM's behalf (datapath.Engine.SendIKE);
//   - for policies without --vm, through UDP sockets on the uplink's
//     underlay address (ports 500 and 4500, in the uplink's namespace),
//     open only while such a policy or an IKE SA on the underlay exists;
//   - received datagrams of both kinds go through one bounded queue to
//     one goroutine that runs the engine, so that a flood is dropped at
//     the queue and DH and signatures never run on a data path worker.
//
// A datagram the engine sends before its way out exists (the data path
// does not know the VM yet, the sockets are not open yet) is tried again
// within milliseconds, a bounded number of times.
//
// It must not decide anything about IKE (the engine and internal/ikectl
// do), change the daemon's state, or parse packets beyond the 4-byte
// non-ESP marker of port 4500.
package ikeio
