"""What the tests run against: a Bot API emulator, a PostgreSQL server, web pages, a load balancer."""
