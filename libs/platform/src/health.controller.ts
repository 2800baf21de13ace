import { Controller, Get } from '@nestjs/common';

/** Liveness for load balancers and container health checks (no authentication, no body). */
@Controller('health')
export class HealthController {
  @Get()
  health(): { status: 'ok' } {
    return { status: 'ok' };
  }
}
