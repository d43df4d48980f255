variable "name" {
  description = "Prefix of every resource's name (one deployment per name and region)."
  type        = string
  default     = "corridor"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}$", var.name))
    error_message = "name: lower-case letters, digits and dashes, 2-31 characters, starting with a letter."
  }
}

variable "region" {
  description = "AWS region."
  type        = string
  default     = "eu-west-1"
}

variable "tags" {
  description = "Extra tags on every resource."
  type        = map(string)
  default     = {}
}

variable "lambda_zip" {
  description = "The functions' code: the zip `cargo lambda build --release --arm64 --features aws --output-format zip` writes (target/lambda/corridor/bootstrap.zip). One zip serves all three functions; each function's handler (api, worker, sweeper) picks its part."
  type        = string
  default     = "../../target/lambda/corridor/bootstrap.zip"
}

variable "architecture" {
  description = "The zip's CPU architecture: arm64 (Graviton, cheaper per ms) or x86_64."
  type        = string
  default     = "arm64"
  validation {
    condition     = contains(["arm64", "x86_64"], var.architecture)
    error_message = "architecture: arm64 or x86_64."
  }
}

variable "secret_arn" {
  description = "An existing Secrets Manager secret holding the secret settings as a JSON object (DATABASE_URL, CORRIDOR_ADMIN_KEY, and optionally CORRIDOR_ONRAMP_WEBHOOK_SECRET, CORRIDOR_OFFRAMP_WEBHOOK_SECRET, CORRIDOR_ALERT_WEBHOOK_SECRET). Empty: this module creates an empty secret, and you put its value with `aws secretsmanager put-secret-value` (never through Terraform, so no secret lands in its state)."
  type        = string
  default     = ""
}

variable "kms_key_arn" {
  description = "A customer-managed KMS key for the secret, the queues and the logs. Empty: AWS-managed encryption (SQS-managed SSE, the aws/secretsmanager key, CloudWatch's default)."
  type        = string
  default     = ""
}

variable "subnet_ids" {
  description = "Private subnets to run the functions in, next to the database (RDS Proxy). Empty: the functions run outside any VPC and reach the database over the internet (TLS required)."
  type        = list(string)
  default     = []
}

variable "security_group_ids" {
  description = "Security groups of the functions (allowed to reach the database or its proxy on 5432) when subnet_ids is set."
  type        = list(string)
  default     = []
}

variable "create_vpc_endpoints" {
  description = "With subnet_ids: create interface endpoints for SQS and Secrets Manager so the functions reach them without a NAT gateway. Each endpoint bills per hour and AZ; set false if the subnets already route to them (NAT or existing endpoints)."
  type        = bool
  default     = true
}

variable "vpc_id" {
  description = "The VPC of subnet_ids (needed only for create_vpc_endpoints)."
  type        = string
  default     = ""
}

variable "api_memory_mb" {
  description = "Memory of the API function (CPU scales with it)."
  type        = number
  default     = 512
}

variable "worker_memory_mb" {
  description = "Memory of the worker function."
  type        = number
  default     = 512
}

variable "worker_timeout_s" {
  description = "Longest a worker invocation runs. It stops claiming jobs run_for_s before that (less the provider timeout), so jobs it holds finish inside it."
  type        = number
  default     = 120
}

variable "run_for_s" {
  description = "Longest a worker or sweeper invocation claims jobs for (CORRIDOR_LAMBDA_RUN_FOR); shorter than worker_timeout_s."
  type        = number
  default     = 60
  validation {
    condition     = var.run_for_s >= 1
    error_message = "run_for_s must be at least 1."
  }
}

variable "worker_concurrency" {
  description = "Most worker invocations at once (SQS event source maximum concurrency, at least 2). Bounds the database connections workers hold: worker_concurrency x worker_db_pool."
  type        = number
  default     = 10
}

variable "api_reserved_concurrency" {
  description = "Reserved concurrency of the API function (-1: unreserved). Bounds its database connections: concurrency x db_pool. A new account's concurrency quota may be as low as 10: use -1 there."
  type        = number
  default     = 50
}

variable "db_pool" {
  description = "Database connections each API instance opens (CORRIDOR_DB_POOL). An instance serves one request at a time; 2 leaves room for a read beside a write."
  type        = number
  default     = 2
}

variable "worker_jobs_at_once" {
  description = "Jobs a worker or sweeper invocation runs at once (CORRIDOR_WORKERS)."
  type        = number
  default     = 4
}

variable "worker_db_pool" {
  description = "Database connections each worker or sweeper instance opens (CORRIDOR_DB_POOL); jobs mostly wait on providers, so fewer than worker_jobs_at_once is fine, but not fewer than 2."
  type        = number
  default     = 4
}

variable "api_throttle_rate" {
  description = "API Gateway's steady request rate for the whole deployment (requests per second)."
  type        = number
  default     = 1000
}

variable "api_throttle_burst" {
  description = "API Gateway's burst for the whole deployment (requests)."
  type        = number
  default     = 2000
}

variable "sweep_schedule" {
  description = "EventBridge schedule of the sweeper: recurring jobs (alerts, housekeeping, reconciliation), lost wake-ups, dead letters."
  type        = string
  default     = "rate(1 minute)"
}

variable "max_receive_count" {
  description = "Deliveries of a wake-up that could not be handled before SQS moves it to the dead-letter queue."
  type        = number
  default     = 5
}

variable "log_retention_days" {
  description = "How long CloudWatch keeps the functions' and API Gateway's logs."
  type        = number
  default     = 30
}

variable "environment" {
  description = "Further Corridor settings as plain variables (CORRIDOR_ONRAMP_URL, CORRIDOR_OFFRAMP_URL, CORRIDOR_POLL_INTERVAL, …). Secrets never go here: put them in the secret."
  type        = map(string)
  default     = {}
  validation {
    condition = length(setintersection(keys(var.environment), [
      "DATABASE_URL", "CORRIDOR_ADMIN_KEY", "CORRIDOR_ONRAMP_WEBHOOK_SECRET",
      "CORRIDOR_OFFRAMP_WEBHOOK_SECRET", "CORRIDOR_ALERT_WEBHOOK_SECRET",
    ])) == 0
    error_message = "environment: secret settings belong in the Secrets Manager secret, not in plain variables."
  }
}
