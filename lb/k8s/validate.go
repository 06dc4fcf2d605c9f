package k8s

import (
	"errors"
	"fmt"
)

// checkDNSLabel checks a namespace name: an RFC 1123 label of at most 63
// lower-case letters, digits and '-', starting and ending alphanumeric
// (apimachinery's IsDNS1123Label).
func checkDNSLabel(s string) error {
	if s == "" || len(s) > 63 {
		return fmt.Errorf("must be 1 to 63 characters, not %d", len(s))
	}
	for i := range len(s) {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case c == '-' && i > 0 && i < len(s)-1:
		default:
			return errors.New("must be lower-case letters, digits and '-', starting and ending with a letter or digit (RFC 1123 label)")
		}
	}
	return nil
}

// checkLabelValue checks a label value: at most 63 letters, digits, '-',
// '_' and '.', starting and ending alphanumeric, or empty (apimachinery's
// IsValidLabelValue).
func checkLabelValue(s string) error {
	if len(s) > 63 {
		return fmt.Errorf("must be at most 63 characters, not %d", len(s))
	}
	for i := range len(s) {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case (c == '-' || c == '_' || c == '.') && i > 0 && i < len(s)-1:
		default:
			return errors.New("must be letters, digits, '-', '_' and '.', starting and ending with a letter or digit (a label value)")
		}
	}
	return nil
}
