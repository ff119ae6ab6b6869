package alerter

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/smtp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/reconmon/recon/agent/config"
	"github.com/reconmon/recon/compat/nagios"
)

// NotifierConfig is one [[notifier]] of the alerter sink.
type NotifierConfig struct {
	// Name referenced by rules' notify (required).
	Name string `toml:"name"`
	// Type is webhook, exec, smtp or log.
	Type string `toml:"type"`
	// Timeout of one delivery (default 30s).
	Timeout config.Duration `toml:"timeout"`
	// URL of the webhook (POST, JSON).
	URL string `toml:"url"`
	// Secret signs webhook bodies: X-Recon-Signature: sha256=HMAC.
	Secret string `toml:"secret"`
	// Headers are added to webhook requests.
	Headers map[string]string `toml:"headers"`
	// Command is the exec notifier's script, run with NAGIOS_* variables.
	Command string `toml:"command"`
	// Shell runs command with /bin/sh -c.
	Shell bool `toml:"shell"`
	// Env adds variables for the exec notifier.
	Env map[string]string `toml:"env"`
	// SMTP is the mail server host:port (STARTTLS when offered).
	SMTP string `toml:"smtp"`
	// From is the sender address.
	From string `toml:"from"`
	// To are the recipients.
	To []string `toml:"to"`
	// Username for SMTP AUTH PLAIN.
	Username string `toml:"username"`
	// Password for SMTP AUTH PLAIN.
	Password string `toml:"password"`
	// Contact fills NAGIOS_CONTACTNAME for exec scripts.
	Contact string `toml:"contact"`
	// ContactEmail fills NAGIOS_CONTACTEMAIL for exec scripts.
	ContactEmail string `toml:"contact_email"`
}

type notifier interface {
	// send delivers a group of notifications (a webhook posts them in one
	// request; exec runs the script once per notification).
	send(ctx context.Context, ns []Notification) error
}

func buildNotifier(c NotifierConfig, agent string, log *slog.Logger) (notifier, error) {
	timeout := c.Timeout.D()
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	switch c.Type {
	case "webhook":
		if !strings.HasPrefix(c.URL, "http://") && !strings.HasPrefix(c.URL, "https://") {
			return nil, fmt.Errorf("notifier %q: url must be http(s)", c.Name)
		}
		return &webhook{cfg: c, agent: agent, client: &http.Client{Timeout: timeout}}, nil
	case "exec":
		if c.Command == "" {
			return nil, fmt.Errorf("notifier %q: command is required", c.Name)
		}
		argv := []string{"/bin/sh", "-c", c.Command}
		if !c.Shell {
			var err error
			if argv, err = nagios.SplitCommand(c.Command); err != nil {
				return nil, fmt.Errorf("notifier %q: %w", c.Name, err)
			}
		}
		return &execNotifier{cfg: c, argv: argv, agent: agent, timeout: timeout}, nil
	case "smtp":
		if _, _, err := net.SplitHostPort(c.SMTP); err != nil {
			return nil, fmt.Errorf("notifier %q: smtp must be host:port: %v", c.Name, err)
		}
		if c.From == "" || len(c.To) == 0 {
			return nil, fmt.Errorf("notifier %q: from and to are required", c.Name)
		}
		return &smtpNotifier{cfg: c, agent: agent, timeout: timeout}, nil
	case "log":
		return &logNotifier{log: log.With("notifier", c.Name)}, nil
	}
	return nil, fmt.Errorf("notifier %q: type %q: want webhook, exec, smtp or log", c.Name, c.Type)
}

// WebhookPayload is the documented JSON body of webhook notifications.
type WebhookPayload struct {
	Version       int            `json:"version"` // 1
	Agent         string         `json:"agent"`
	SentAt        time.Time      `json:"sent_at"`
	Notifications []Notification `json:"notifications"`
}

type webhook struct {
	cfg    NotifierConfig
	agent  string
	client *http.Client
}

// Sign computes the X-Recon-Signature value of a body.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func (w *webhook) send(ctx context.Context, ns []Notification) error {
	body, err := json.Marshal(WebhookPayload{Version: 1, Agent: w.agent, SentAt: time.Now().UTC(), Notifications: ns})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "recon-alerter/1")
	if w.cfg.Secret != "" {
		req.Header.Set("X-Recon-Signature", Sign(w.cfg.Secret, body))
	}
	for k, v := range w.cfg.Headers {
		req.Header.Set(k, v)
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return fmt.Errorf("webhook %s: %w", w.cfg.Name, err)
	}
	excerpt, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook %s: %s: %s", w.cfg.Name, resp.Status, strings.TrimSpace(string(excerpt)))
	}
	return nil
}

type execNotifier struct {
	cfg     NotifierConfig
	argv    []string
	agent   string
	timeout time.Duration
}

// nagiosEnv builds the NAGIOS_* environment Nagios gives notification
// commands, so scripts written for Nagios run unchanged.
func nagiosEnv(n Notification, c NotifierConfig) []string {
	host := n.Labels["host"]
	if host == "" {
		host = n.Target
	}
	if host == "" {
		host = n.Check
	}
	service := n.Labels["service"]
	if service == "" {
		service = n.Check
	}
	isHost := n.Labels["kind"] == "host"
	hostState, serviceState := "UP", n.Status
	if isHost {
		switch n.Status {
		case "OK":
			hostState = "UP"
		case "CRITICAL", "WARNING":
			hostState = "DOWN"
		default:
			hostState = "UNREACHABLE"
		}
	}
	stateID := map[string]string{"OK": "0", "WARNING": "1", "CRITICAL": "2", "UNKNOWN": "3"}[n.Status]
	t := n.Time
	env := map[string]string{
		"NOTIFICATIONTYPE": n.Type, "NOTIFICATIONNUMBER": strconv.Itoa(n.Number),
		"NOTIFICATIONCOMMENT": n.Summary, "NOTIFICATIONAUTHOR": "recon",
		"HOSTNAME": host, "HOSTALIAS": host, "HOSTDISPLAYNAME": host, "HOSTADDRESS": n.Target,
		"HOSTSTATE": hostState, "HOSTSTATETYPE": n.StateTyp,
		"LONGDATETIME": t.Format("Mon Jan 2 15:04:05 MST 2006"), "SHORTDATETIME": t.Format("2006-01-02 15:04:05"),
		"DATE": t.Format("2006-01-02"), "TIME": t.Format("15:04:05"), "TIMET": strconv.FormatInt(t.Unix(), 10),
		"CONTACTNAME": c.Contact, "CONTACTALIAS": c.Contact, "CONTACTEMAIL": c.ContactEmail,
	}
	if isHost {
		env["HOSTOUTPUT"], env["LONGHOSTOUTPUT"] = n.Output, n.Long
		env["HOSTATTEMPT"] = strconv.Itoa(n.Attempt)
	} else {
		env["SERVICEDESC"], env["SERVICEDISPLAYNAME"] = service, service
		env["SERVICESTATE"], env["SERVICESTATEID"], env["SERVICESTATETYPE"] = serviceState, stateID, n.StateTyp
		env["SERVICEOUTPUT"], env["LONGSERVICEOUTPUT"] = n.Output, n.Long
		env["SERVICEATTEMPT"] = strconv.Itoa(n.Attempt)
		env["HOSTOUTPUT"] = ""
	}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C"}
	for _, k := range keys {
		out = append(out, "NAGIOS_"+k+"="+env[k])
	}
	// recon's own, richer names.
	labels, _ := json.Marshal(n.Labels)
	out = append(out, "RECON_RULE="+n.Rule, "RECON_STATE="+n.State, "RECON_SEVERITY="+n.Severity,
		"RECON_CHECK="+n.Check, "RECON_CHECK_ID="+n.CheckID.String(), "RECON_METRIC="+n.Metric,
		"RECON_VALUE="+strconv.FormatFloat(n.Value, 'g', -1, 64), "RECON_SUMMARY="+n.Summary,
		"RECON_LABELS="+string(labels), "RECON_NOTIFICATION_ID="+n.ID)
	for k, v := range c.Env {
		out = append(out, k+"="+v)
	}
	return out
}

func (x *execNotifier) send(ctx context.Context, ns []Notification) error {
	for _, n := range ns {
		rctx, cancel := context.WithTimeout(ctx, x.timeout)
		res := nagios.Exec(rctx, x.argv, nagios.ExecOptions{Env: nagiosEnv(n, x.cfg)})
		cancel()
		switch {
		case res.StartErr != nil:
			return fmt.Errorf("exec %s: %w", x.cfg.Name, res.StartErr)
		case res.TimedOut:
			return fmt.Errorf("exec %s: timed out after %v", x.cfg.Name, x.timeout)
		case res.ExitCode != 0:
			return fmt.Errorf("exec %s: exit %d: %s", x.cfg.Name, res.ExitCode, strings.TrimSpace(string(res.Stderr)+string(res.Stdout)))
		}
	}
	return nil
}

type smtpNotifier struct {
	cfg     NotifierConfig
	agent   string
	timeout time.Duration
}

func (s *smtpNotifier) send(ctx context.Context, ns []Notification) error {
	host, _, _ := net.SplitHostPort(s.cfg.SMTP)
	d := net.Dialer{Timeout: s.timeout}
	conn, err := d.DialContext(ctx, "tcp", s.cfg.SMTP)
	if err != nil {
		return fmt.Errorf("smtp %s: %w", s.cfg.Name, err)
	}
	conn.SetDeadline(time.Now().Add(s.timeout))
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return fmt.Errorf("smtp %s: %w", s.cfg.Name, err)
	}
	defer c.Close()
	if ok, _ := c.Extension("STARTTLS"); ok {
		if err := c.StartTLS(&tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}); err != nil {
			return fmt.Errorf("smtp %s: starttls: %w", s.cfg.Name, err)
		}
	}
	if s.cfg.Username != "" {
		if err := c.Auth(smtp.PlainAuth("", s.cfg.Username, s.cfg.Password, host)); err != nil {
			return fmt.Errorf("smtp %s: auth: %w", s.cfg.Name, err)
		}
	}
	if err := c.Mail(s.cfg.From); err != nil {
		return fmt.Errorf("smtp %s: MAIL FROM: %w", s.cfg.Name, err)
	}
	for _, to := range s.cfg.To {
		if err := c.Rcpt(to); err != nil {
			return fmt.Errorf("smtp %s: RCPT TO %s: %w", s.cfg.Name, to, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("smtp %s: DATA: %w", s.cfg.Name, err)
	}
	if _, err := w.Write(mailBody(s.cfg, s.agent, ns)); err != nil {
		return fmt.Errorf("smtp %s: %w", s.cfg.Name, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("smtp %s: %w", s.cfg.Name, err)
	}
	return c.Quit()
}

func mailBody(c NotifierConfig, agent string, ns []Notification) []byte {
	var b bytes.Buffer
	subject := fmt.Sprintf("[recon] %s: %s", ns[0].Type, ns[0].Summary)
	if len(ns) > 1 {
		subject = fmt.Sprintf("[recon] %d notifications from %s", len(ns), agent)
	}
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n",
		c.From, strings.Join(c.To, ", "), strings.ReplaceAll(subject, "\n", " "), time.Now().Format(time.RFC1123Z))
	for _, n := range ns {
		fmt.Fprintf(&b, "%s: %s\r\nrule: %s\r\ncheck: %s (%s)\r\nstatus: %s %s\r\ntime: %s\r\n", n.Type, n.Summary, n.Rule, n.Check,
			n.Target, n.Status, n.StateTyp, n.Time.Format(time.RFC3339))
		if n.Metric != "" {
			fmt.Fprintf(&b, "metric: %s = %g\r\n", n.Metric, n.Value)
		}
		fmt.Fprintf(&b, "output: %s\r\n\r\n", n.Output)
	}
	return b.Bytes()
}

type logNotifier struct{ log *slog.Logger }

func (l *logNotifier) send(_ context.Context, ns []Notification) error {
	for _, n := range ns {
		l.log.Info("alert notification", "type", n.Type, "rule", n.Rule, "check", n.Check, "metric", n.Metric,
			"status", n.Status, "value", n.Value, "summary", n.Summary)
	}
	return nil
}

var errNoNotifier = errors.New("unknown notifier")
