package oauthtoken

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"golang.org/x/oauth2"

	"github.com/mailferry/mailferry/pipeline"
)

// Error is a failure to obtain a token: the token endpoint refused the grant
// (Code is its RFC 6749 §5.2 error code) or could not be reached. It never
// holds a token, a secret or an assertion.
type Error struct {
	Grant    Grant
	For      string // whom the token was for: the subject, or the client ID
	Endpoint string // the token (or device authorization) endpoint
	// Status is the HTTP status of the endpoint's answer; 0 when none came.
	Status int
	// Code and Description are the endpoint's error and error_description
	// (control characters removed, cut to 300 bytes, secrets masked).
	Code, Description string
	// Hint says what to check, in the provider's terms; "" when nothing
	// more useful than the description can be said.
	Hint string
	err  error // the transport error, when no answer came
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "oauth2 %s grant", e.Grant)
	if e.For != "" {
		fmt.Fprintf(&b, " for %s", e.For)
	}
	fmt.Fprintf(&b, ": %s", e.Endpoint)
	switch {
	case e.Code != "":
		b.WriteString(" refused: " + e.Code)
		if e.Description != "" {
			b.WriteString(": " + e.Description)
		}
	case e.Status != 0:
		fmt.Fprintf(&b, " answered HTTP %d", e.Status)
		if e.Description != "" {
			b.WriteString(": " + e.Description)
		}
	case e.err != nil:
		b.WriteString(" could not be reached: " + e.err.Error())
	}
	if e.Hint != "" {
		b.WriteString("; check: " + e.Hint)
	}
	return b.String()
}

// Unwrap returns the transport error, if any.
func (e *Error) Unwrap() error { return e.err }

// Temporary reports whether trying again later may help: no answer, a
// server error, throttling, or temporarily_unavailable.
func (e *Error) Temporary() bool {
	switch {
	case e.Code == "temporarily_unavailable", e.Code == "slow_down":
		return true
	case e.Code != "":
		return false
	}
	return e.Status == 0 || e.Status >= 500 || e.Status == http.StatusTooManyRequests || e.Status == http.StatusRequestTimeout
}

// ErrorClass implements pipeline.Classifier: a refused grant fails the
// account (the same request will not do better), an unreachable endpoint is
// retried like a dropped connection.
func (e *Error) ErrorClass() pipeline.Class {
	if e.Temporary() {
		return pipeline.ClassTransient
	}
	return pipeline.ClassFatal
}

var _ pipeline.Classifier = (*Error)(nil)

// newError turns what golang.org/x/oauth2 returned into an *Error. masks
// are secrets that must not appear even if a server echoes them.
func (s *Source) newError(endpoint string, err error, masks ...string) *Error {
	e := &Error{Grant: s.cfg.Grant, For: s.cfg.who(), Endpoint: redactURL(endpoint)}
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		if re.Response != nil {
			e.Status = re.Response.StatusCode
		}
		e.Code, e.Description = re.ErrorCode, re.ErrorDescription
		if e.Code == "" {
			// x/oauth2's jwt package leaves the body unparsed.
			e.Code, e.Description = parseErrorBody(re.Body)
		}
		if e.Code == "" && e.Description == "" && len(re.Body) > 0 {
			e.Description = string(re.Body)
		}
		e.Code = printable(e.Code, 64)
		e.Description = mask(printable(e.Description, 300), masks)
	} else {
		e.err = errors.New(mask(printable(err.Error(), 300), masks))
	}
	e.Hint = s.hintFor(e)
	return e
}

// parseErrorBody reads an RFC 6749 §5.2 error from a JSON or form body.
func parseErrorBody(body []byte) (code, desc string) {
	var j struct {
		Error            string `json:"error"`
		ErrorDescription string `json:"error_description"`
	}
	if json.Unmarshal(body, &j) == nil {
		return j.Error, j.ErrorDescription
	}
	if v, err := url.ParseQuery(string(body)); err == nil {
		return v.Get("error"), v.Get("error_description")
	}
	return "", ""
}

func mask(s string, secrets []string) string {
	for _, m := range secrets {
		if len(m) >= 4 {
			s = strings.ReplaceAll(s, m, "***")
		}
	}
	return s
}

// redactURL drops a URL's query and user info: neither belongs in a
// message.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return printable(raw, 200)
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}

func (c *Config) who() string {
	if c.Grant == ServiceAccount {
		return c.Subject
	}
	return c.ClientID
}

var aadstsRE = regexp.MustCompile(`AADSTS(\d+)`)

// hintFor says what an administrator should check for e. Microsoft's
// AADSTS codes are documented at https://login.microsoftonline.com/error;
// Google's texts are those of its token endpoint for service accounts.
func (s *Source) hintFor(e *Error) string {
	c := &s.cfg
	if m := aadstsRE.FindStringSubmatch(e.Description); m != nil {
		n, _ := strconv.Atoi(m[1])
		return microsoftHint(c, n)
	}
	provider := c.Provider
	if provider == "" {
		switch {
		case strings.Contains(e.Endpoint, "login.microsoftonline.com"):
			provider = "microsoft365"
		case strings.Contains(e.Endpoint, "googleapis.com"), strings.Contains(e.Endpoint, "accounts.google.com"):
			provider = "gmail"
		}
	}
	if c.Grant == ServiceAccount || provider == "gmail" {
		if h := googleHint(c, s.saClientID(), e); h != "" {
			return h
		}
	}
	return genericHint(c, e)
}

func microsoftHint(c *Config, code int) string {
	switch code {
	case 700016:
		return fmt.Sprintf("the application %s is not known in this tenant: check client_id and tenant, and that an admin consented to the app in this tenant", c.ClientID)
	case 7000215:
		return "the client secret is wrong: use the secret's Value (not its Secret ID) from Certificates & secrets of the app registration"
	case 7000222:
		return "the client secret has expired: add a new one under Certificates & secrets of the app registration and update client_secret_*"
	case 90002, 900023, 90013:
		return "the tenant does not exist: set tenant to the directory (tenant) ID or a verified domain such as contoso.onmicrosoft.com"
	case 700027, 700023, 50012:
		return "the certificate is not accepted: upload certificate_file's certificate to the app registration (Certificates & secrets > Certificates) and check that it has not expired"
	case 700024, 700025:
		return "the client assertion's time is not accepted: check this computer's clock (NTP)"
	case 65001, 65004:
		return "consent is missing: in the app registration, API permissions > Grant admin consent (Office 365 Exchange Online: IMAP.AccessAsApp and POP.AccessAsApp for client-credentials; IMAP.AccessAsUser.All for device and refresh-token)"
	case 7000218:
		return "the app is used as a public client: turn on Allow public client flows (app registration > Authentication), or set client_secret_*"
	case 70011, 1002012:
		return "the scope is not valid: client-credentials needs https://outlook.office365.com/.default; device and refresh-token https://outlook.office365.com/IMAP.AccessAsUser.All offline_access"
	case 500011, 650052:
		return "the resource is unknown in this tenant: scope must name https://outlook.office365.com (Office 365 Exchange Online), and the tenant must have Exchange Online"
	case 7000112:
		return "the application is disabled in this tenant: Enterprise applications > the app > Properties > Enabled for users to sign in"
	case 50173, 70043, 700082, 70008, 50076, 50079, 50078, 700084, 54005:
		return "the user's sign-in is no longer valid (refresh token expired or revoked, password changed, or MFA required): run 'mailferry login' again for this account"
	case 53003, 530003, 53000:
		return "a Conditional Access policy blocked the sign-in: an admin must allow this app, user, device or location"
	case 50057:
		return "the user account is disabled in the tenant"
	case 50034, 50059:
		return "the user or tenant does not exist: check the account's user and tenant"
	case 70020, 70019:
		return "the code was not entered in time: run 'mailferry login' again and sign in within the time shown"
	case 70000:
		return "the grant is invalid or was revoked: for device and refresh-token run 'mailferry login' again"
	}
	return fmt.Sprintf("see https://login.microsoftonline.com/error?code=%d", code)
}

func googleHint(c *Config, clientID string, e *Error) string {
	d := strings.ToLower(e.Description)
	switch {
	case e.Code == "unauthorized_client":
		return fmt.Sprintf("domain-wide delegation is missing or lacks the scope: in the Google Admin console, Security > Access and data control > API controls > Manage Domain Wide Delegation, the service account's client ID %s must be listed with the scope %s",
			clientID, strings.Join(c.Scopes, ","))
	case e.Code == "invalid_grant" && strings.Contains(d, "signature"):
		return "the key in key_file was deleted or is not this service account's: create a new JSON key (Google Cloud console > IAM & Admin > Service accounts > Keys)"
	case e.Code == "invalid_grant" && (strings.Contains(d, "email") || strings.Contains(d, "user")):
		return fmt.Sprintf("%s is not an active user of the Workspace domain: check the account's user (or oauth2 subject)", c.Subject)
	case e.Code == "invalid_grant" && (strings.Contains(d, "iat") || strings.Contains(d, "exp") || strings.Contains(d, "timeframe") || strings.Contains(d, "short-lived")):
		return "this computer's clock is off: synchronise it (NTP)"
	case e.Code == "invalid_grant" && c.Grant != ServiceAccount:
		return "the refresh token was revoked or has expired (Google expires those of OAuth apps in Testing status after 7 days): obtain a new one"
	case e.Code == "invalid_client", e.Code == "disabled_client":
		return "the service account or its OAuth client was deleted or disabled: check it in the Google Cloud console (IAM & Admin > Service accounts)"
	case e.Code == "access_denied", e.Code == "admin_policy_enforced":
		return "the Workspace admin blocks this access: Security > Access and data control > API controls"
	}
	return ""
}

func genericHint(c *Config, e *Error) string {
	switch e.Code {
	case "":
		if e.Status == 0 {
			return "that the token endpoint's address is right and reachable from this computer (proxy, firewall, DNS)"
		}
		return ""
	case "invalid_client":
		return "client_id and the client secret or certificate"
	case "invalid_grant":
		if c.Grant == Device || c.Grant == RefreshToken {
			return "the refresh token in token_file was revoked or has expired: run 'mailferry login' again"
		}
		return "that the grant is still authorized by the provider's administrator"
	case "unauthorized_client":
		return fmt.Sprintf("that the application may use the %s grant", c.Grant)
	case "invalid_scope":
		return "scope"
	case "access_denied":
		return "that the user or administrator approved the access"
	case "expired_token":
		return "the code was not entered in time: run 'mailferry login' again"
	}
	return ""
}

func (s *Source) saClientID() string {
	if s.saKey != nil && s.saKey.ClientID != "" {
		return s.saKey.ClientID
	}
	return "(client_id in key_file)"
}
