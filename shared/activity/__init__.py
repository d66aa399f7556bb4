"""The activity watch: the Office 365 Management Activity feed read once per pass, state kept between passes."""
