package alerter

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"sync"
	"time"
)

// Matcher matches one label, exactly or by regular expression (anchored).
type Matcher struct {
	Name  string `json:"name"`
	Value string `json:"value"`
	Regex bool   `json:"regex,omitempty"`
	re    *regexp.Regexp
}

// Silence suppresses notifications of matching alerts between StartsAt
// and EndsAt.
type Silence struct {
	ID        string    `json:"id"`
	Matchers  []Matcher `json:"matchers"`
	StartsAt  time.Time `json:"starts_at"`
	EndsAt    time.Time `json:"ends_at"`
	CreatedBy string    `json:"created_by"`
	Comment   string    `json:"comment"`
	CreatedAt time.Time `json:"created_at"`
}

// Active reports whether the silence applies at t.
func (s *Silence) Active(t time.Time) bool { return !t.Before(s.StartsAt) && t.Before(s.EndsAt) }

func (s *Silence) matches(labels map[string]string) bool {
	for i := range s.Matchers {
		m := &s.Matchers[i]
		v := labels[m.Name]
		if m.Regex {
			if !m.re.MatchString(v) {
				return false
			}
		} else if v != m.Value {
			return false
		}
	}
	return true
}

// Silences is the persisted set of silences.
type Silences struct {
	mu   sync.RWMutex
	path string
	list map[string]*Silence
	now  func() time.Time
}

// keepExpired is how long expired silences are kept for reference.
const keepExpired = 7 * 24 * time.Hour

// LoadSilences reads the silences file (missing = none). path "" keeps
// silences in memory only (backtests).
func LoadSilences(path string) (*Silences, error) {
	s := &Silences{path: path, list: map[string]*Silence{}, now: time.Now}
	if path == "" {
		return s, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("silences: %w", err)
	}
	var list []*Silence
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, fmt.Errorf("silences: %s: %w", path, err)
	}
	for _, sil := range list {
		if err := compile(sil); err != nil {
			return nil, fmt.Errorf("silences: %s: silence %s: %w", path, sil.ID, err)
		}
		s.list[sil.ID] = sil
	}
	return s, nil
}

func compile(sil *Silence) error {
	if len(sil.Matchers) == 0 {
		return errors.New("at least one matcher is required")
	}
	for i := range sil.Matchers {
		m := &sil.Matchers[i]
		if m.Name == "" {
			return fmt.Errorf("matcher %d: name is required", i)
		}
		if m.Regex {
			re, err := regexp.Compile("^(?:" + m.Value + ")$")
			if err != nil {
				return fmt.Errorf("matcher %s: %w", m.Name, err)
			}
			m.re = re
		}
	}
	return nil
}

// Add validates and stores a silence, returning it with its ID.
func (s *Silences) Add(sil Silence) (Silence, error) {
	now := s.now()
	if err := compile(&sil); err != nil {
		return sil, err
	}
	if sil.StartsAt.IsZero() {
		sil.StartsAt = now
	}
	if sil.EndsAt.IsZero() {
		return sil, errors.New("ends_at is required (silences always expire)")
	}
	if !sil.EndsAt.After(sil.StartsAt) {
		return sil, errors.New("ends_at must be after starts_at")
	}
	if !sil.EndsAt.After(now) {
		return sil, errors.New("ends_at is in the past")
	}
	var id [8]byte
	rand.Read(id[:])
	sil.ID, sil.CreatedAt = hex.EncodeToString(id[:]), now
	s.mu.Lock()
	defer s.mu.Unlock()
	s.list[sil.ID] = &sil
	if err := s.saveLocked(); err != nil {
		delete(s.list, sil.ID)
		return sil, err
	}
	return sil, nil
}

// ErrNoSilence is returned by Expire for an unknown ID.
var ErrNoSilence = errors.New("no such silence")

// Expire ends a silence now (it is kept, expired, for reference).
func (s *Silences) Expire(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sil, ok := s.list[id]
	if !ok {
		return ErrNoSilence
	}
	now := s.now()
	if sil.EndsAt.After(now) {
		prev := sil.EndsAt
		sil.EndsAt = now
		if err := s.saveLocked(); err != nil {
			sil.EndsAt = prev
			return err
		}
	}
	return nil
}

// List returns every silence, newest first.
func (s *Silences) List() []Silence {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]Silence, 0, len(s.list))
	for _, sil := range s.list {
		out = append(out, *sil)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.After(out[j].CreatedAt) })
	return out
}

// Silenced reports whether an active silence matches the labels at t.
func (s *Silences) Silenced(labels map[string]string, t time.Time) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, sil := range s.list {
		if sil.Active(t) && sil.matches(labels) {
			return true
		}
	}
	return false
}

// saveLocked writes the file atomically, dropping long-expired silences.
func (s *Silences) saveLocked() error {
	if s.path == "" {
		return nil
	}
	now := s.now()
	list := make([]*Silence, 0, len(s.list))
	for id, sil := range s.list {
		if now.Sub(sil.EndsAt) > keepExpired {
			delete(s.list, id)
			continue
		}
		list = append(list, sil)
	}
	b, err := json.MarshalIndent(list, "", " ")
	if err != nil {
		return err
	}
	return writeFileAtomic(s.path, b)
}

// writeFileAtomic writes via a fsynced temporary file and a rename, so a
// crash leaves the old or the new content, never a torn file.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	d, err := os.Open(dir)
	if err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
