"""The participant portal: VECOZO-portal-style pages for practices without an EPD link."""
