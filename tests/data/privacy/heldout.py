# Held-out snippets written after the detectors were tuned; measured once before any fix.
HELD_NEG = [
    "Meeting notes 2026-02-14: agreed to ship 3.2.0 by Q2, budget 45 000 EUR.",
    "kubectl get pods -n prod | grep 0/1", "docker run -p 8080:80 -e MODE=prod nginx:1.25.3",
    "Invoice 2026-0042 total 1 234,50 EUR due 15.03.2026", "The train leaves at 06:12 from platform 4.",
    "cron: 0 3 * * 1-5 /usr/local/bin/backup.sh", "Serial number: 0123 4567 8901", "ffmpeg -ss 00:01:30 -t 00:00:10 -i in.mp4 out.mp4",
    "Rate limit: 600 requests per 60 s per key.", "EAN 4006381333931", "ISSN 0317-8471",
    "Call stack depth 1024 exceeded", "Contact form fields: name, email, message", "Phone model: Pixel 8 Pro 256 GB",
    "temperature=0.7 top_p=0.95 seed=42 n_ctx=4096", "epoch 3/10 loss=0.4213 acc=0.8871", "Resolution 1920x1080 @ 60 Hz",
    "He ran 10 000 m in 27:43.12.", "SSN field left blank by the applicant.", "password_min_length = 12",
    "token_budget: 8192", "secret_santa_draw = true", "Use pk_test_ keys in the sandbox.",
    "See RFC 3849 for 2001:db8::/32.", "localhost:11434/api/tags", "http://[::1]:8080/health",
    "Apartment 12, Building 3, Floor 4", "Page 12 Street Art chapter",
    "We hired 25 New Staff this year.", "Chapter 7: Road to Recovery", "In 1999 Park Lane opened.",
    "Matrix 3 4 5 6 7 8 9 0 1 2", "Telephone interviews start at 09:00.", "Reference 0800 0001 (internal)",
    "git log --since=2026-01-01 --author=alice", "npm ERR! code E404 404 Not Found - GET https://registry.npmjs.org/@scope%2fpkg",
    "s3://bucket-name/path/to/object.json", "The key insight is that caching helps.", "Passwords must contain 12 characters.",
]
HELD_POS = [
    ("The bus stops at 5 Station Approach.", ["street_address"]),
    ("Rückruf bitte unter 0176 5550 1234.", ["phone"]), ("write to a.kim@example.net today", ["email"]),
    ("ssh deploy@198.51.100.14 -p 2222", ["ip_address"]), ("new address: 45 Elm Grove, Leeds", ["street_address"]),
    ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", ["secret"]),
    ("pay to GB33BUKB20201555555555 by Friday", ["iban"]), ("visa 4012 8888 8888 1881 exp 01/30", ["payment_card"]),
    ("SSN 219-09-9999 on file", ["national_id"]), ("Telefon: +49 (0)30 5550 1234", ["phone"]),
    ("KEY=\"-----BEGIN EC PRIVATE KEY-----\\nMHcCAQEEIAbc\\n-----END EC PRIVATE KEY-----\"", ["private_key"]),
]
