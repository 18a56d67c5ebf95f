package queue

import (
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/goclip/goclip/internal/queue/queuetest"
)

func freePorts(t testing.TB, n int) []int { return queuetest.FreePorts(t, n) }

func natsCluster(t testing.TB, n int) ([]*server.Server, string) {
	return queuetest.NATSCluster(t, n)
}
