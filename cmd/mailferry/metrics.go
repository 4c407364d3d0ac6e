package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mailferry/mailferry/pipeline"
)

// metrics are the service's Prometheus metrics, in a registry of their own
// (never the library's global default one). The only label is the
// account's name from the config: no server, user or password.
type metrics struct {
	reg          *prometheus.Registry
	polls        *prometheus.CounterVec
	pollFailures *prometheus.CounterVec
	copied       *prometheus.CounterVec
	bytes        *prometheus.CounterVec
	msgFailures  *prometheus.CounterVec
	lastSuccess  *prometheus.GaugeVec
	lastDuration *prometheus.GaugeVec
}

func newMetrics(accounts []string) *metrics {
	label := []string{"account"}
	m := &metrics{
		reg: prometheus.NewRegistry(),
		polls: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mailferry_polls_total",
			Help: "Polls of the account, successful or not."}, label),
		pollFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mailferry_poll_failures_total",
			Help: "Polls of the account that ended with an error (server down, login refused, ...)."}, label),
		copied: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mailferry_messages_copied_total",
			Help: "Messages copied to the destination and committed."}, label),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mailferry_bytes_copied_total",
			Help: "Bytes of the messages copied."}, label),
		msgFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mailferry_messages_failed_total",
			Help: "Messages a poll could not copy (retried by the next poll) or skipped for good."}, label),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "mailferry_last_success_timestamp_seconds",
			Help: "Unix time of the end of the account's last successful poll; 0 before the first."}, label),
		lastDuration: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "mailferry_last_poll_duration_seconds",
			Help: "How long the account's last poll took."}, label),
	}
	m.reg.MustRegister(m.polls, m.pollFailures, m.copied, m.bytes, m.msgFailures, m.lastSuccess, m.lastDuration,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Every account shows up from the start, with zeros.
	for _, a := range accounts {
		for _, v := range []*prometheus.CounterVec{m.polls, m.pollFailures, m.copied, m.bytes, m.msgFailures} {
			v.WithLabelValues(a)
		}
		m.lastSuccess.WithLabelValues(a)
		m.lastDuration.WithLabelValues(a)
	}
	return m
}

// observe records one finished poll of account.
func (m *metrics) observe(account string, st *pipeline.Stats, err error, finished time.Time) {
	m.polls.WithLabelValues(account).Inc()
	m.copied.WithLabelValues(account).Add(float64(st.Copied))
	m.bytes.WithLabelValues(account).Add(float64(st.Bytes))
	m.msgFailures.WithLabelValues(account).Add(float64(st.Failed + st.Skipped))
	m.lastDuration.WithLabelValues(account).Set(st.Duration.Seconds())
	if err != nil {
		m.pollFailures.WithLabelValues(account).Inc()
		return
	}
	m.lastSuccess.WithLabelValues(account).Set(float64(finished.UnixNano()) / 1e9)
}

// serveMetrics serves m at http://addr/metrics until stop is called. It
// listens before returning, so a taken port fails the start.
func serveMetrics(addr string, m *metrics, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("serving metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "error", err)
		}
	}()
	log.Info("serving metrics", "url", "http://"+ln.Addr().String()+"/metrics")
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}
