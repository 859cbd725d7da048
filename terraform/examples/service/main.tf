# A cluster, a task definition and a service of two tasks, plus a token for
# the hosts that will run them. `cargo xtask test` applies this file
# (tests/tests/terraform.rs) against a real Berth with real containers.

terraform {
  required_providers {
    berth = {
      source  = "berth/berth"
      version = ">= 0.1.0"
    }
  }
}

# Endpoint and credentials from BERTH_ENDPOINT, BERTH_ACCESS_KEY_ID and
# BERTH_SECRET_ACCESS_KEY, or the CLI's profile (`berth configure`).
provider "berth" {}

variable "image" {
  type    = string
  default = "busybox:1.36"
}

variable "desired_count" {
  type    = number
  default = 2
}

resource "berth_cluster" "demo" {
  name = "demo"
  tags = { team = "platform" }
}

# Start hosts with: berth agent --cluster demo --registration-token "$(terraform output -raw registration_token)" ...
resource "berth_registration_token" "hosts" {
  cluster     = berth_cluster.demo.name
  max_uses    = 10
  description = "hosts of the demo cluster"
}

resource "berth_task_definition" "web" {
  family = "web"
  container_definitions = jsonencode([{
    name    = "app"
    image   = var.image
    memory  = 32
    command = ["sh", "-c", "trap 'exit 0' TERM; echo up; while true; do sleep 1; done"]
  }])
}

resource "berth_service" "web" {
  cluster                  = berth_cluster.demo.name
  name                     = "web"
  task_definition          = berth_task_definition.web.id
  desired_count            = var.desired_count
  min_healthy_time_seconds = 1
  wait_for_steady_state    = true

  placement_strategy {
    type  = "spread"
    field = "host.id"
  }
}

data "berth_hosts" "demo" {
  cluster = berth_cluster.demo.name
}

output "registration_token" {
  value     = berth_registration_token.hosts.token
  sensitive = true
}

output "service_id" {
  value = berth_service.web.id
}

output "hosts" {
  value = [for h in data.berth_hosts.demo.hosts : h.hostname]
}
